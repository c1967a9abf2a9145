// One PostgreSQL for the whole integration run: WALERA_TEST_DATABASE_URL when set, else an
// embedded cluster with wal_level=logical on a random port, removed when the run ends.
import type { TestProject } from "vitest/node"
import { startEmbeddedPg } from "./EmbeddedPg.ts"

declare module "vitest" {
  export interface ProvidedContext {
    adminUrl: string
  }
}

export default async function setup(project: TestProject) {
  const external = process.env["WALERA_TEST_DATABASE_URL"]
  if (external !== undefined && external !== "") {
    project.provide("adminUrl", external)
    return
  }
  const pg = await startEmbeddedPg()
  project.provide("adminUrl", pg.url())
  return async () => {
    await pg.stop()
  }
}
