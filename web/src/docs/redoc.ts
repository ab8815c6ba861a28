// ReDoc's standalone build from the pinned redoc package, served by the app itself (issue 19).
// The standalone file is a UMD bundle the bundler cannot take in: it is emitted as a hashed
// asset as it is and loaded by a script element (same origin, so the policy stays 'self').
import redocUrl from 'redoc/bundles/redoc.standalone.js?url';

declare global {
  interface Window {
    Redoc?: { init(specUrl: string, options: object, element: HTMLElement | null): void };
  }
}

const script = document.createElement('script');
script.src = redocUrl;
script.addEventListener('load', () => {
  window.Redoc?.init('/openapi.json', {}, document.getElementById('redoc'));
});
document.head.append(script);
