// Validates rendered Kubernetes objects offline against the Kubernetes
// OpenAPI schemas (npm: kubernetes-models, pinned in validate.sh), then checks
// the few properties weightd's deployment relies on.
//
// usage: node validate.mjs RENDERED.yaml [--expect-pvc]
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

// The packages live in the build tree (validate.sh installs them), not next
// to this file, so resolve them from there: yaml through require (it ships
// CommonJS), kubernetes-models by file (ESM only, one module per kind).
const modules = process.env.WEIGHTD_NODE_MODULES;
const require = createRequire(modules + "/");
const YAML = require("yaml");
const load = async (path) => import(pathToFileURL(`${modules}/${path}.js`).href);

const file = process.argv[2];
const docs = YAML.parseAllDocuments(readFileSync(file, "utf8"))
  .map((d) => d.toJS())
  .filter((d) => d !== null);
let failures = 0;
const fail = (what, why) => {
  console.error(`FAIL ${what}: ${why}`);
  failures++;
};

for (const obj of docs) {
  const what = `${obj.kind}/${obj.metadata?.name}`;
  let model;
  try {
    model = await load(`kubernetes-models/${obj.apiVersion}/${obj.kind}`);
  } catch (e) {
    fail(what, `no schema for ${obj.apiVersion} ${obj.kind} (${e.message})`);
    continue;
  }
  const Cls = model[obj.kind];
  try {
    new Cls(obj).validate();
    console.log(`ok   ${what} (${obj.apiVersion})`);
  } catch (e) {
    fail(what, e.message);
  }
}

// What the deployment must keep, whatever the overlay changes. weightd runs
// as one Deployment (replicas behind Services) or, in overlays/node-local, as
// one DaemonSet (a Unix socket on a hostPath for the node's trainers).
const byKind = (kind) => docs.filter((d) => d.kind === kind);
const deployments = byKind("Deployment").concat(byKind("DaemonSet"));
if (deployments.length !== 1) {
  fail("Deployment", `expected 1 Deployment or DaemonSet, got ${deployments.length}`);
}
const daemonSet = deployments.length === 1 && deployments[0].kind === "DaemonSet";
// The kubelet probes in plaintext: with --tls_cert in the flags the probes
// must use the plaintext health-only port (--health_listen), else 50051 or it.
const flagsMap = byKind("ConfigMap").find((m) => m.metadata.name === "weightd-flags");
const flags = flagsMap?.data?.["weightd.flags"] ?? "";
const healthPort = Number(flags.match(/^--health_listen=\S*:(\d+)\s*$/m)?.[1] ?? NaN);
const tls = /^--tls_cert=/m.test(flags);
const probePorts = tls ? [healthPort] : [50051, healthPort];
for (const d of deployments) {
  const pod = d.spec.template.spec;
  if (pod.securityContext?.runAsNonRoot !== true) fail("Deployment", "runAsNonRoot not set");
  for (const c of pod.containers) {
    if (c.securityContext?.readOnlyRootFilesystem !== true) {
      fail(`container ${c.name}`, "readOnlyRootFilesystem not set");
    }
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      if (!probePorts.includes(c[probe]?.grpc?.port)) {
        fail(`container ${c.name}`, `${probe} is not grpc on ${probePorts.filter((p) => p)}` +
             (tls ? " (TLS: probes need --health_listen)" : ""));
      }
    }
    const models = (c.volumeMounts || []).find((m) => m.mountPath === "/models");
    if (models?.readOnly !== true) fail(`container ${c.name}`, "/models is not mounted read-only");
  }
  const repo = (pod.volumes || []).find((v) => v.persistentVolumeClaim);
  if (repo?.persistentVolumeClaim.readOnly !== true) fail("Deployment", "repository PVC not read-only");
}
const headless = byKind("Service").find((s) => s.metadata.name === "weightd-headless");
if (!headless || headless.spec.clusterIP !== "None") fail("Service", "no headless weightd-headless");
if (!daemonSet && byKind("PodDisruptionBudget").length !== 1) fail("PodDisruptionBudget", "missing");

// node-local: the socket --listen names lies in a hostPath directory that
// weightd mounts writable, and a trainer pod mounts the same directory, is
// told the unix: target, and is in the socket's group (weightd's runAsGroup;
// the socket is --unix_socket_mode 0660).
const socket = flags.match(/^--listen=\S*unix:(\/\S+?)(?:,\S*)?\s*$/m)?.[1];
const dirOf = (path) => path.slice(0, path.lastIndexOf("/"));
const hostPathOf = (pod, mountPath, c) => {
  const mount = (c.volumeMounts || []).find((m) => m.mountPath === mountPath);
  return (pod.volumes || []).find((v) => v.name === mount?.name)?.hostPath;
};
if (daemonSet) {
  const pod = deployments[0].spec.template.spec;
  const weightd = pod.containers.find((c) => c.name === "weightd");
  if (!socket) fail("DaemonSet", "--listen names no unix: socket");
  const hostPath = socket && weightd && hostPathOf(pod, dirOf(socket), weightd);
  if (!hostPath) fail("DaemonSet", `${socket}'s directory is not a hostPath mount of weightd`);
  if (hostPath && hostPath.type !== "DirectoryOrCreate") {
    fail("DaemonSet", "the socket hostPath is not DirectoryOrCreate");
  }
  if (!/^--unix_socket_mode=0?660\s*$/m.test(flags)) fail("DaemonSet", "--unix_socket_mode is not 0660");
  const group = weightd?.securityContext?.runAsGroup ?? pod.securityContext?.runAsGroup;
  const trainers = byKind("Pod").filter((p) => p.spec.containers.some((c) =>
    (c.env || []).some((e) => e.name === "WEIGHTD_TARGET" && e.value === `unix:${socket}`)));
  if (trainers.length === 0) fail("Pod", `no example trainer with WEIGHTD_TARGET=unix:${socket}`);
  for (const t of trainers) {
    const c = t.spec.containers.find((c) => (c.env || []).some((e) => e.name === "WEIGHTD_TARGET"));
    if (hostPathOf(t.spec, dirOf(socket), c)?.path !== hostPath?.path) {
      fail(`Pod/${t.metadata.name}`, `does not mount the socket directory ${hostPath?.path}`);
    }
    const groups = [t.spec.securityContext?.fsGroup, t.spec.securityContext?.runAsGroup,
                    ...(t.spec.securityContext?.supplementalGroups || [])];
    if (!groups.includes(group)) fail(`Pod/${t.metadata.name}`, `not in the socket's group ${group}`);
  }
}
if (process.argv.includes("--expect-pvc") && byKind("PersistentVolumeClaim").length !== 1) {
  fail("PersistentVolumeClaim", "missing");
}

console.log(`${docs.length} objects, ${failures} failures`);
process.exit(failures === 0 ? 0 : 1);
