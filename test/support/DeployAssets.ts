// Reads the deployment assets under deploy/ the way their consumers do, for tests that check them against the code:
// the alert rules as Prometheus loads them, and the Kubernetes kustomization rendered as `kubectl kustomize` would
// (the subset of kustomize the manifests use; anything else fails loudly so the renderer is extended, not bypassed).
import { existsSync, readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { parse, parseAllDocuments } from "yaml"

export const root = resolve(import.meta.dirname, "../..")
export const read = (path: string): string => readFileSync(join(root, path), "utf8")

export interface Rule {
  readonly alert: string
  readonly expr: string
  readonly for?: string
  readonly labels?: Record<string, string>
  readonly annotations?: Record<string, string>
}

export const alertRules = (): Array<Rule> => {
  const doc = parse(read("deploy/prometheus/alerts.yml")) as { groups: Array<{ rules: Array<Rule> }> }
  return doc.groups.flatMap((group) => group.rules)
}

export interface K8sObject {
  readonly apiVersion: string
  readonly kind: string
  readonly metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }
  readonly spec?: Record<string, unknown>
  readonly data?: Record<string, string>
  /** The file it came from, relative to the kustomization. */
  readonly source: string
}

interface Kustomization {
  readonly apiVersion?: string
  readonly kind?: string
  readonly resources?: Array<string>
  readonly labels?: Array<{
    pairs: Record<string, string>
    includeSelectors?: boolean
    includeTemplates?: boolean
  }>
  readonly images?: Array<{ name: string; newName?: string; newTag?: string }>
}

const KNOWN_FIELDS = new Set(["apiVersion", "kind", "resources", "labels", "images"])

interface Container {
  image: string
}
interface PodTemplate {
  metadata?: { labels?: Record<string, string> }
  spec: { containers: Array<Container>; initContainers?: Array<Container> }
}

/** The objects `kubectl kustomize <dir>` prints, for the kustomize features the manifests use. */
export const renderKustomization = (dir = "deploy/kubernetes"): Array<K8sObject> => {
  const k = parse(read(`${dir}/kustomization.yaml`)) as Kustomization
  const unknown = Object.keys(k).filter((field) => !KNOWN_FIELDS.has(field))
  if (unknown.length > 0)
    throw new Error(`kustomization fields this renderer does not implement: ${unknown.join(", ")}`)
  const objects: Array<K8sObject> = []
  for (const file of k.resources ?? []) {
    if (!existsSync(join(root, dir, file))) throw new Error(`${dir}/kustomization.yaml lists ${file}, which is missing`)
    for (const doc of parseAllDocuments(read(`${dir}/${file}`))) {
      if (doc.errors.length > 0) throw new Error(`${dir}/${file}: ${doc.errors.map((e) => e.message).join("; ")}`)
      const object = doc.toJS() as Omit<K8sObject, "source"> | null
      if (object !== null) objects.push({ ...object, source: file })
    }
  }
  for (const object of objects) {
    const template = (object.spec?.["template"] ?? undefined) as PodTemplate | undefined
    for (const label of k.labels ?? []) {
      if (label.includeSelectors === true)
        throw new Error("labels.includeSelectors is not implemented by this renderer")
      object.metadata.labels = { ...object.metadata.labels, ...label.pairs }
      if (label.includeTemplates === true && template !== undefined)
        template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, ...label.pairs } }
    }
    for (const container of [...(template?.spec.containers ?? []), ...(template?.spec.initContainers ?? [])]) {
      const [name, tag] = container.image.split(":")
      const image = (k.images ?? []).find((i) => i.name === name)
      if (image !== undefined) container.image = `${image.newName ?? name}:${image.newTag ?? tag}`
    }
  }
  return objects
}

/** The one object of a kind in the rendered kustomization. */
export const one = (objects: ReadonlyArray<K8sObject>, kind: string): K8sObject => {
  const found = objects.filter((object) => object.kind === kind)
  if (found.length !== 1) throw new Error(`expected one ${kind} in the kustomization, found ${found.length}`)
  return found[0]!
}

export interface Probe {
  readonly httpGet: { path: string; port: string | number }
  readonly [key: string]: unknown
}

export interface WaleraContainer {
  readonly name: string
  readonly image: string
  readonly env?: Array<{
    name: string
    value?: string
    valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } }
  }>
  readonly ports?: Array<{ name?: string; containerPort: number; protocol?: string }>
  readonly resources: { requests: Record<string, string>; limits: Record<string, string> }
  readonly livenessProbe: Probe
  readonly readinessProbe: Probe
  readonly startupProbe?: Probe
  readonly securityContext: Record<string, unknown> & { capabilities: { drop: Array<string> } }
  readonly volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }>
}

/** The Walera container of the Deployment, with its probes' ports resolved to numbers. */
export const waleraContainer = (objects: ReadonlyArray<K8sObject>) => {
  const deployment = one(objects, "Deployment")
  const containers = (deployment.spec as unknown as PodTemplate & { template: PodTemplate }).template.spec
    .containers as unknown as Array<WaleraContainer>
  if (containers.length !== 1) throw new Error(`expected one container in the Deployment, found ${containers.length}`)
  const container = containers[0]!
  const portNumber = (port: string | number): number => {
    if (typeof port === "number") return port
    const named = container.ports?.find((p) => p.name === port)
    if (named === undefined) throw new Error(`a probe names port "${port}", which the container does not declare`)
    return named.containerPort
  }
  const env = (name: string) => container.env?.find((e) => e.name === name)?.value
  const probes = (
    [
      ["startup", container.startupProbe],
      ["liveness", container.livenessProbe],
      ["readiness", container.readinessProbe],
    ] as const
  ).flatMap(([kind, probe]) =>
    probe === undefined
      ? []
      : [{ kind, path: probe.httpGet.path, portName: probe.httpGet.port, port: portNumber(probe.httpGet.port) }],
  )
  return { deployment, container, env, portNumber, probes }
}
