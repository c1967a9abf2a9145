// One PostgreSQL with wal_level=logical for the whole integration run, from the first of:
// WALERA_TEST_DATABASE_URL (an existing server), testcontainers (when a Docker engine
// answers), or an embedded cluster on a random port. Whatever was started is removed at the end.
import { existsSync } from "node:fs"
import http from "node:http"
import type { TestProject } from "vitest/node"
import { LOGICAL_PG_FLAGS, startEmbeddedPg } from "./EmbeddedPg.ts"

declare module "vitest" {
  export interface ProvidedContext {
    adminUrl: string
  }
}

/** True when a Docker engine answers on DOCKER_HOST (unix socket) or the default socket. */
const dockerAnswers = (): Promise<boolean> => {
  const host = process.env["DOCKER_HOST"]
  const socketPath = host?.startsWith("unix://") ? host.slice("unix://".length) : "/var/run/docker.sock"
  if (host !== undefined && !host.startsWith("unix://")) return Promise.resolve(true)
  if (!existsSync(socketPath)) return Promise.resolve(false)
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: "/_ping", timeout: 1000 }, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on("timeout", () => req.destroy())
    req.on("error", () => resolve(false))
  })
}

export default async function setup(project: TestProject) {
  const external = process.env["WALERA_TEST_DATABASE_URL"]
  if (external !== undefined && external !== "") {
    project.provide("adminUrl", external)
    return
  }
  if (await dockerAnswers()) {
    const { GenericContainer, Wait } = await import("testcontainers")
    const container = await new GenericContainer("postgres:18-alpine")
      .withEnvironment({ POSTGRES_PASSWORD: "walera" })
      .withCommand(["postgres", ...LOGICAL_PG_FLAGS])
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start()
    project.provide(
      "adminUrl",
      `postgres://postgres:walera@${container.getHost()}:${container.getMappedPort(5432)}/postgres`,
    )
    return async () => {
      await container.stop()
    }
  }
  const pg = await startEmbeddedPg()
  project.provide("adminUrl", pg.url())
  return async () => {
    await pg.stop()
  }
}
