// Starts a Tidemark of its own for the browser tests: the built `tidemark` binary as one
// process per service (so that a test can pause the projector with SIGSTOP), on free
// ports, with a fresh database and topic prefix, against the test broker.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { randomUUID } from "node:crypto";
import { openSync, mkdirSync } from "node:fs";

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the browser tests with infra/test`);
  return value;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function answers(url, seconds = 60) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${seconds} s`);
}

export { freePort };

/** `services`: which to run (all by default); `env`: more settings; `consolePort`: the
 *  console's port, when something else must know it first. */
export async function startTidemark(logDir, { services = ["command-service", "projector", "query-service", "console"], env: more = {}, consolePort } = {}) {
  const bin = need("TIDEMARK_BIN");
  const id = randomUUID().replaceAll("-", "").slice(0, 12);
  const [command, registry, query, projector, console] = await Promise.all([freePort(), freePort(), freePort(), freePort(), consolePort ?? freePort()]);
  const env = {
    ...process.env,
    DATABASE_URL: `${need("TIDEMARK_TEST_DATABASE_URL")}/tidemark_test_console_${id}`,
    TIDEMARK_BROKERS: need("TIDEMARK_TEST_BROKERS"),
    TIDEMARK_TOPIC_PREFIX: `c${id}.`,
    TIDEMARK_PARTITIONS: "3",
    TIDEMARK_COMMAND_ADDR: `127.0.0.1:${command}`,
    TIDEMARK_REGISTRY_ADDR: `127.0.0.1:${registry}`,
    TIDEMARK_QUERY_ADDR: `127.0.0.1:${query}`,
    TIDEMARK_CONSOLE_ADDR: `127.0.0.1:${console}`,
    TIDEMARK_PROJECTOR_ADDR: `127.0.0.1:${projector}`,
    TIDEMARK_REGISTRY_URL: `http://127.0.0.1:${registry}`,
    TIDEMARK_LOG: process.env.TIDEMARK_LOG ?? "warn",
    ...more,
  };
  mkdirSync(logDir, { recursive: true });
  const setupLog = openSync(`${logDir}/setup.log`, "a");
  execFileSync(bin, ["setup"], { env, stdio: ["ignore", setupLog, setupLog] });
  const processes = {};
  const run = (service) => {
    const log = openSync(`${logDir}/${service}.log`, "a");
    processes[service] = spawn(bin, [service], { env, stdio: ["ignore", log, log] });
  };
  run("registry");
  await answers(`http://127.0.0.1:${registry}/healthz`);
  for (const service of services) run(service);
  const ports = { "command-service": command, "query-service": query, projector, console };
  await Promise.all(services.filter((s) => ports[s]).map((s) => answers(`http://127.0.0.1:${ports[s]}/healthz`)));
  return {
    console: `http://127.0.0.1:${console}`,
    pauseProjector: () => processes.projector.kill("SIGSTOP"),
    resumeProjector: () => processes.projector.kill("SIGCONT"),
    stop: async () => {
      for (const p of Object.values(processes)) {
        p.kill("SIGCONT");
        p.kill("SIGTERM");
      }
      await Promise.all(Object.values(processes).map((p) => (p.exitCode === null ? new Promise((r) => p.once("exit", r)) : null)));
    },
  };
}
