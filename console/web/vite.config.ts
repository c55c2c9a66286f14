import { defineConfig } from "vite";

// Preact's JSX without a plugin: the transform only needs to know where `jsx` comes from.
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true },
});
