"""A stand-in for the web app's build (`npm run build` in web/), shaped like Vite's output."""

import json
from pathlib import Path

INDEX = '<!doctype html><html><head><script type="module" src="/assets/app-Ab12.js"></script>'
APP_JS = "console.log('the app');"
MANIFEST = {
    "index.html": {"file": "assets/app-Ab12.js", "src": "index.html", "isEntry": True},
    "src/docs/swagger.ts": {
        "file": "assets/swagger-Cd34.js",
        "src": "src/docs/swagger.ts",
        "isEntry": True,
        "css": ["assets/swagger-Ef56.css"],
    },
    "src/docs/redoc.ts": {
        "file": "assets/redoc-Gh78.js",
        "src": "src/docs/redoc.ts",
        "isEntry": True,
        "assets": ["assets/redoc.standalone-Ij90.js"],
    },
}


def write_web_build(root: Path) -> Path:
    """Writes a small build into `root` and returns it."""
    (root / "assets").mkdir(parents=True)
    (root / ".vite").mkdir()
    (root / "index.html").write_text(INDEX)
    (root / "robots.txt").write_text("User-agent: *\n")
    (root / "assets" / "app-Ab12.js").write_text(APP_JS)
    for key, entry in MANIFEST.items():
        if key == "index.html":
            continue
        for name in [entry["file"], *entry.get("css", []), *entry.get("assets", [])]:
            (root / str(name)).write_text("/* asset */")
    (root / ".vite" / "manifest.json").write_text(json.dumps(MANIFEST))
    return root
