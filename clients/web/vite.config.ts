import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Built into dist/ and served by the gateway at /app/ (CONDUCTOR_GATEWAY_WEB_DIR; `conductor dev` sets it), so the
// page and the API share one origin. `npm run dev` proxies the API to a running gateway instead (default :4001).
const gateway = process.env.CONDUCTOR_GATEWAY_URL ?? "http://127.0.0.1:4001";

export default defineConfig({
  base: "/app/",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true },
  server: { proxy: { "/v1": { target: gateway, changeOrigin: true } } },
});
