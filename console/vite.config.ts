// Relative asset paths, so dist/ can be served from any folder of any static web server.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: { target: "es2022", sourcemap: true },
});
