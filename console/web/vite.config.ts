import { defineConfig } from "vite";

// The console's service, for `npm run dev`: the page asks it where the APIs are and how to sign in.
const service = process.env.TIDEMARK_CONSOLE_URL ?? "http://127.0.0.1:8083";

// Preact's JSX without a plugin: the transform only needs to know where `jsx` comes from.
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true },
  server: { proxy: { "/config.json": service, "/sign-in": service } },
});
