/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The backend serves dist/ at "/" with an SPA fallback; in dev, /api is proxied to it.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
  },
  server: {
    // /openapi.json: the sample form reads the API's request defaults from it
    proxy: Object.fromEntries(["/api", "/openapi.json"].map((p) => [p, { target: process.env.API_URL ?? "http://127.0.0.1:8000", changeOrigin: false }])),
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
