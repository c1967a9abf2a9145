// The demo's HTTP/2 mode: Walera serves TLS with the committed localhost certificate (browsers speak h2 only over TLS),
// so everything in the demo that calls Walera itself (the readiness wait, the e2e tests' scrapes) must trust that
// certificate, and a human must be told how to make the browser accept it.
import { readFileSync } from "node:fs"
import https from "node:https"
import { join, resolve } from "node:path"

const TLS_DIR = resolve(import.meta.dirname, "..", "tls")
export const DEMO_TLS_CERT_FILE = join(TLS_DIR, "localhost.crt")
export const DEMO_TLS_KEY_FILE = join(TLS_DIR, "localhost.key")

export interface TextResponse {
  readonly status: number
  readonly body: string
}

/** GET `url`; an https URL is checked against the demo certificate only (Node's fetch cannot be given a CA). */
export const getText = async (url: string, timeoutMs = 2_000): Promise<TextResponse> => {
  if (!url.startsWith("https:")) {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    return { status: response.status, body: await response.text() }
  }
  return new Promise((resolveGet, reject) => {
    const request = https.get(url, { ca: readFileSync(DEMO_TLS_CERT_FILE), timeout: timeoutMs }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () =>
        resolveGet({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
      )
      response.on("error", reject)
    })
    request.on("timeout", () => request.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)))
    request.on("error", reject)
  })
}

/** What a person must do once before the browser will talk to Walera over TLS, as lines for the console. */
export const certificateAdvice = (waleraUrl: string, boardUrl: string): Array<string> => [
  "  HTTP/2: Walera serves TLS with the self-signed certificate in testbench/tls/. Browsers refuse it until told",
  "  otherwise, and the UI then shows every stream as reconnecting. Either",
  `    - open ${waleraUrl}/livez once, accept the warning ("Advanced" → "Proceed"), then reload the UI, or`,
  "    - start a throwaway Chromium (or Chrome) that skips certificate checks; never browse elsewhere with it:",
  `      chromium --ignore-certificate-errors --user-data-dir="$(mktemp -d)" '${boardUrl}'`,
]
