-- Demo schema for `npm run demo`: todo_lists <- tasks <- subtasks with updated_at-bump triggers,
-- so every child write also touches its root row (Walera's routing anchor, seed Rule 2).
--
-- Why the triggers cannot loop: a trigger only ever writes its PARENT table (subtasks -> tasks,
-- tasks -> todo_lists) and todo_lists has no bump trigger, so the chain is at most two levels deep.
-- One subtask write = one transaction carrying a subtasks, a tasks and a todo_lists change.

CREATE TABLE todo_lists (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  todo_list_id bigint NOT NULL REFERENCES todo_lists (id) ON DELETE CASCADE,
  title text NOT NULL,
  status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'IN_PROGRESS', 'COMPLETED')),
  notes text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_todo_list_id_idx ON tasks (todo_list_id);

CREATE TABLE subtasks (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  task_id bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  title text NOT NULL,
  status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'IN_PROGRESS', 'COMPLETED')),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subtasks_task_id_idx ON subtasks (task_id);

-- Every row write stamps its own updated_at (BEFORE UPDATE; inserts use the column default).
CREATE FUNCTION demo_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE TRIGGER todo_lists_touch BEFORE UPDATE ON todo_lists FOR EACH ROW EXECUTE FUNCTION demo_touch_updated_at();
CREATE TRIGGER tasks_touch BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION demo_touch_updated_at();
CREATE TRIGGER subtasks_touch BEFORE UPDATE ON subtasks FOR EACH ROW EXECUTE FUNCTION demo_touch_updated_at();

-- tasks -> bump the owning list. A re-parented task bumps both lists (that transaction then touches
-- two roots and Walera drops it as multi-root for list subscribers: move tasks in two steps instead).
CREATE FUNCTION demo_bump_todo_list() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    UPDATE todo_lists SET updated_at = now() WHERE id = OLD.todo_list_id;
  END IF;
  IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.todo_list_id IS DISTINCT FROM OLD.todo_list_id) THEN
    UPDATE todo_lists SET updated_at = now() WHERE id = NEW.todo_list_id;
  END IF;
  RETURN NULL;
END
$$;

-- subtasks -> bump the owning task, whose own trigger then bumps the list.
CREATE FUNCTION demo_bump_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    UPDATE tasks SET updated_at = now() WHERE id = OLD.task_id;
  END IF;
  IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.task_id IS DISTINCT FROM OLD.task_id) THEN
    UPDATE tasks SET updated_at = now() WHERE id = NEW.task_id;
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER tasks_bump_list AFTER INSERT OR UPDATE OR DELETE ON tasks
  FOR EACH ROW EXECUTE FUNCTION demo_bump_todo_list();
CREATE TRIGGER subtasks_bump_task AFTER INSERT OR UPDATE OR DELETE ON subtasks
  FOR EACH ROW EXECUTE FUNCTION demo_bump_task();

-- Seed: ten lists with a few tasks and subtasks each (ids 1.. in insertion order). Ten, so the board (one stream
-- per list) needs more than the six connections a browser opens to one origin over HTTP/1.1.
INSERT INTO todo_lists (title) VALUES ('Launch Walera'), ('Weekend errands'), ('Garden'), ('Book club'),
  ('Move flat'), ('Team offsite'), ('Tax return'), ('Birthday party'), ('Kitchen'), ('Learn the cello');

INSERT INTO tasks (todo_list_id, title, status, notes) VALUES
  (1, 'Write the SPEC', 'COMPLETED', 'Contract first; tests pin the MUSTs.'),
  (1, 'Implement the WAL reader', 'IN_PROGRESS', 'pgoutput over a temporary slot.'),
  (1, 'Ship the demo', 'PENDING', 'Embedded PostgreSQL, no Docker.'),
  (1, 'Run the benchmark', 'PENDING', NULL),
  (2, 'Buy groceries', 'PENDING', 'Oat milk, not the sweet one.'),
  (2, 'Fix the bike', 'PENDING', NULL),
  (2, 'Call grandma', 'COMPLETED', 'Sunday afternoon is best.'),
  (3, 'Plant tomatoes', 'PENDING', 'After the last frost.'),
  (3, 'Mow the lawn', 'COMPLETED', NULL),
  (3, 'Fix the fence', 'IN_PROGRESS', NULL),
  (4, 'Pick the next book', 'COMPLETED', 'Something short this time.'),
  (4, 'Book a table', 'PENDING', NULL),
  (5, 'Order boxes', 'COMPLETED', NULL),
  (5, 'Pack the kitchen', 'IN_PROGRESS', NULL),
  (5, 'Change the address', 'PENDING', 'Bank, insurance, post.'),
  (5, 'Return the keys', 'PENDING', NULL),
  (6, 'Choose a venue', 'IN_PROGRESS', NULL),
  (6, 'Send invitations', 'PENDING', NULL),
  (7, 'Collect receipts', 'IN_PROGRESS', NULL),
  (7, 'File the return', 'PENDING', 'Deadline end of July.'),
  (8, 'Bake a cake', 'PENDING', NULL),
  (8, 'Buy candles', 'COMPLETED', NULL),
  (8, 'Make a playlist', 'PENDING', NULL),
  (9, 'Measure the cabinets', 'COMPLETED', NULL),
  (9, 'Get quotes', 'PENDING', NULL),
  (10, 'Tune the strings', 'PENDING', NULL),
  (10, 'Practise scales', 'IN_PROGRESS', '15 minutes a day.');

INSERT INTO subtasks (task_id, title, status) VALUES
  (1, 'HTTP API', 'COMPLETED'),
  (1, 'Routing rules', 'COMPLETED'),
  (2, 'Decode Relation messages', 'COMPLETED'),
  (2, 'Assemble transactions', 'IN_PROGRESS'),
  (2, 'Standby status updates', 'PENDING'),
  (3, 'Schema and triggers', 'PENDING'),
  (3, 'Browser UI', 'PENDING'),
  (5, 'Bread', 'PENDING'),
  (5, 'Apples', 'PENDING'),
  (6, 'Patch the tube', 'PENDING'),
  (6, 'Oil the chain', 'PENDING'),
  (10, 'Buy posts', 'COMPLETED'),
  (10, 'Paint', 'PENDING'),
  (14, 'Plates', 'COMPLETED'),
  (14, 'Glasses', 'PENDING'),
  (17, 'Visit the lake hotel', 'PENDING'),
  (21, 'Flour', 'PENDING'),
  (21, 'Eggs', 'PENDING'),
  (25, 'Ask two carpenters', 'PENDING');

CREATE PUBLICATION walera_pub FOR TABLE todo_lists, tasks, subtasks;
