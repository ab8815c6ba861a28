import preact from '@preact/preset-vite';
import { type Plugin, defineConfig } from 'vite';

// ReDoc's standalone bundle shows a "powered by" logo from its CDN, with no option to turn
// it off. Its <img> hides itself when loading fails, so an empty data: URL removes it and
// /redoc asks nothing of any other host.
const REDOC_LOGO = 'https://cdn.redoc.ly/redoc/logo-mini.svg';

function redocWithoutItsCdn(): Plugin {
  return {
    name: 'redoc-without-its-cdn',
    generateBundle(_options, bundle) {
      for (const file of Object.values(bundle)) {
        if (file.type !== 'asset' || !file.fileName.includes('redoc.standalone')) continue;
        const source = file.source.toString();
        if (!source.includes(REDOC_LOGO)) this.error(`${REDOC_LOGO} not found: check redoc's bundle`);
        file.source = source.replaceAll(REDOC_LOGO, 'data:,');
      }
    },
  };
}

// `npm run dev`: Vite on :5173 with hot reload, the API (`make run`) behind it on :8000, so
// the app and the API share one origin as in production (the cookie's Path=/auth works).
const API = process.env.API_URL ?? 'http://127.0.0.1:8000';
const API_PATHS = ['/auth', '/tasks', '/projects', '/notifications', '/admin', '/health', '/openapi.json'];

export default defineConfig({
  plugins: [preact(), redocWithoutItsCdn()],
  server: { proxy: Object.fromEntries(API_PATHS.map((path) => [path, API])) },
  build: {
    // app/web.py reads it to write the /docs and /redoc pages' script and style tags.
    manifest: true,
    // Swagger UI is large; it is loaded by /docs only, never by the web app.
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      input: {
        app: 'index.html',
        swagger: 'src/docs/swagger.ts',
        redoc: 'src/docs/redoc.ts',
      },
    },
  },
});
