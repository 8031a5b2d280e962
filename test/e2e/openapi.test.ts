// The OpenAPI document (/api/v1/openapi.json) and the browsable reference (/api/v1/docs),
// served by a broker started as `npm start` starts it.
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { useBroker } from "./broker";

const broker = useBroker();

interface Operation {
  responses?: Record<string, { description?: string; content?: Record<string, unknown> }>;
  operationId?: string;
}
interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  servers?: { url: string }[];
  paths?: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown>; securitySchemes?: Record<string, unknown> };
}

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

async function openapi(): Promise<OpenApiDocument> {
  const res = await fetch(`${broker().httpUrl}/api/v1/openapi.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/application\/json/);
  return (await res.json()) as OpenApiDocument;
}

/** Every `$ref` in the document, with where it was found. */
function refs(node: unknown, at = "#", out: { ref: string; at: string }[] = []): { ref: string; at: string }[] {
  if (Array.isArray(node)) node.forEach((n, i) => refs(n, `${at}/${i}`, out));
  else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "$ref" && typeof v === "string") out.push({ ref: v, at });
      else refs(v, `${at}/${k}`, out);
    }
  }
  return out;
}

function resolvePointer(doc: unknown, ref: string): unknown {
  if (!ref.startsWith("#/")) return undefined;
  return ref
    .slice(2)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce<unknown>((node, key) => (node && typeof node === "object" ? (node as Record<string, unknown>)[key] : undefined), doc);
}

describe("GET /api/v1/openapi.json", () => {
  it("is an OpenAPI 3.1 document that validates against the 3.1 schema (offline validator)", async () => {
    const doc = await openapi();
    expect(doc.openapi).toMatch(/^3\.1\./);
    const validator = new Validator();
    const result = await validator.validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 1)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
  });

  it("has paths, and every operation describes its responses; every $ref resolves", async () => {
    const doc = await openapi();
    const paths = Object.keys(doc.paths ?? {});
    expect(paths.length).toBeGreaterThan(0);
    // Paths are relative to the server URL, the API's mount point.
    expect(doc.servers?.[0]?.url).toBe("/api/v1");
    for (const p of paths) expect(p, "paths start with /, and never name the mount point again").toMatch(/^\/(?!.*\/api\/v1\/)/);
    // The API of issue 11, each under its resource.
    expect(paths).toEqual(
      expect.arrayContaining([
        "/publish", "/publish/bulk", "/publish/{topic}",
        "/devices", "/devices/{id}", "/devices/{id}/disconnect",
        "/retained", "/retained/{topic}", "/retained/sweep",
        "/keys", "/keys/{id}",
        "/stats",
      ]),
    );
    const operationIds = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      for (const [method, op] of Object.entries(item)) {
        if (!METHODS.includes(method)) continue;
        const responses = Object.entries(op.responses ?? {});
        expect(responses.length, `${method.toUpperCase()} ${path} has responses`).toBeGreaterThan(0);
        for (const [status, response] of responses) {
          expect(response.description, `${method.toUpperCase()} ${path} ${status} has a description`).toBeTruthy();
        }
        if (op.operationId) {
          expect(operationIds.has(op.operationId), `operationId ${op.operationId} is unique`).toBe(false);
          operationIds.add(op.operationId);
        }
      }
    }
    for (const { ref, at } of refs(doc)) expect(resolvePointer(doc, ref), `${ref} (at ${at}) resolves`).toBeDefined();
  });
});

describe("GET /api/v1/docs (the reference page)", () => {
  /** Absolute http(s) URLs in a text: a page that loads with no request to the internet names none it would fetch. */
  const absoluteUrls = (text: string) => [...text.matchAll(/\bhttps?:\/\/[^\s"'`)<>\\]+/g)].map((m) => m[0]);

  it("answers HTML whose scripts and stylesheet are all on this origin, and they load", async () => {
    const res = await fetch(`${broker().httpUrl}/api/v1/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    const html = await res.text();
    expect(absoluteUrls(html)).toEqual([]);
    const sources = [...html.matchAll(/<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(sources).toEqual(["/api/v1/docs/swagger-ui.css", "/api/v1/docs/swagger-ui-bundle.js", "/api/v1/docs/init.js"]);
    for (const src of sources) {
      const asset = await fetch(new URL(src, broker().httpUrl));
      expect(asset.status, src).toBe(200);
      expect(asset.headers.get("content-type"), src).toMatch(src.endsWith(".css") ? /text\/css/ : /javascript/);
      expect((await asset.text()).length, src).toBeGreaterThan(src.endsWith("init.js") ? 100 : 100_000);
    }
    // Also with a trailing slash (strict routing is off).
    expect((await fetch(`${broker().httpUrl}/api/v1/docs/`)).status).toBe(200);
  });

  it("its Content-Security-Policy keeps every request on this origin", async () => {
    const res = await fetch(`${broker().httpUrl}/api/v1/docs`);
    const csp = res.headers.get("content-security-policy") ?? "";
    const directives = new Map(csp.split(";").map((d) => d.trim().split(/\s+/)).map(([name = "", ...values]) => [name, values]));
    expect(directives.get("default-src")).toEqual(["'none'"]);
    for (const name of ["script-src", "style-src", "img-src", "font-src", "connect-src"]) {
      const values = directives.get(name) ?? [];
      expect(values, name).toContain("'self'");
      // Only this origin, inline styles and data: URIs: no host, no scheme that reaches out.
      for (const v of values) expect(["'self'", "'unsafe-inline'", "data:"], `${name} ${v}`).toContain(v);
    }
    expect(directives.get("script-src")).toEqual(["'self'"]);
    expect(directives.get("connect-src")).toEqual(["'self'"]);
  });

  it("the start-up script loads this origin's document with the validator badge off, and names no other host", async () => {
    const init = await (await fetch(`${broker().httpUrl}/api/v1/docs/init.js`)).text();
    expect(absoluteUrls(init)).toEqual([]);
    expect(init).toMatch(/validatorUrl:\s*null/);
    expect(init).toContain('"/api/v1/openapi.json"');
    expect(init).toMatch(/window\.location\.origin/);
  });

  it("the stylesheet fetches nothing (url() only with data: URIs) and the bundle names no host it would fetch", async () => {
    const css = await (await fetch(`${broker().httpUrl}/api/v1/docs/swagger-ui.css`)).text();
    const cssUrls = [...css.matchAll(/url\(\s*["']?([^"')]+)/g)].map((m) => m[1]!);
    for (const u of cssUrls) expect(u, "a url() in swagger-ui.css").toMatch(/^data:/);
    expect(css).not.toMatch(/@import/);

    const bundle = await (await fetch(`${broker().httpUrl}/api/v1/docs/swagger-ui-bundle.js`)).text();
    expect(bundle).not.toMatch(/sourceMappingURL=/);
    // Hosts named in swagger-ui-dist's bundle, reviewed: XML namespaces, JSON Schema and
    // OpenAPI dialect identifiers (compared, never fetched), links in error texts and
    // documentation, and the validator badge (validatorUrl: null above turns it off). A new
    // host after an upgrade of swagger-ui-dist fails here until reviewed; the CSP blocks any
    // request to it whatever it is.
    const reviewed = new Set([
      "www.w3.org", "spec.openapis.org", "json-schema.org", "validator.swagger.io", "datatracker.ietf.org",
      "www.rfc-editor.org", "github.com", "swagger.io", "vladimirgorej.com", "redux.js.org", "reactjs.org",
      "spdx.org", "example.com", "twitter.com", "www.facebook.com", "instagram.com", "soundcloud.com",
      "www.tiktok.com", "petstore.swagger.io", "localhost", "fb.me", "www.apache.org", "schema.org", "npms.io",
      "xn--9n2bp8q.com", // "https://실례.com/": an IRI format example
    ]);
    const hosts = new Set(
      absoluteUrls(bundle)
        .map((u) => URL.parse(u.replace(/[,;.]+$/, ""))?.hostname ?? "")
        // Template pieces such as `https://${host}` are not hosts.
        .filter((h) => /^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(h)),
    );
    const unreviewed = [...hosts].filter((h) => !reviewed.has(h));
    expect(unreviewed).toEqual([]);
  });
});
