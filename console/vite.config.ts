// Relative asset paths, so dist/ can be served from any folder of any static web server.
// hls.js (~580 kB) is its own chunk, loaded only when a cloud recording is played.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: { target: "es2022", sourcemap: true, chunkSizeWarningLimit: 600 },
});
