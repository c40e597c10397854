// Shared harness of the browser tests: starts the real `bulwark` binary on a free loopback port
// with a throw-away data folder, creates users with its CLI, and launches Debian's Chromium
// (headless, fresh profile) through playwright-core. Nothing here downloads anything.
//
// Environment:
//   BULWARK_BIN      the server binary (default: <repo>/target/debug/bulwark)
//   CHROMIUM_PATH    the browser (default: /usr/bin/chromium)
//   BROWSER_DEBUG=1  echo the server's log lines on stderr

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const BIN = process.env.BULWARK_BIN || path.join(REPO, 'target', 'debug', 'bulwark');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** The flags the project's issue asks for (Playwright adds its own fresh --user-data-dir). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // A second wall behind `page.route`: no host name but localhost resolves.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
];

const STARTUP_MS = 20_000;

/** A password that the server's strength policy accepts (random, 24+ characters). */
export function strongPassword() {
  return `Bw-${randomBytes(18).toString('base64url')}-9x`;
}

function serverEnv(dir) {
  const env = { ...process.env };
  // Only the settings below reach the server: drop any BULWARK_* the caller's shell has.
  for (const key of Object.keys(env)) if (key.startsWith('BULWARK_')) delete env[key];
  return {
    ...env,
    BULWARK_DATA_DIR: dir,
    BULWARK_DATABASE_URL: `sqlite://${dir}/b.db`,
    BULWARK_MASTER_SECRET: randomBytes(32).toString('base64url'),
    // Cheap hashing: these tests are about the browser, not about Argon2 cost.
    BULWARK_PASSWORD_HASHING__MEMORY_KIB: '1024',
    BULWARK_PASSWORD_HASHING__ITERATIONS: '1',
    BULWARK_RATE_LIMITS__LOGIN_PER_IP: '1000/minute',
    BULWARK_RATE_LIMITS__LOGIN_PER_USERNAME: '1000/minute',
    // The XSS test opens a few hundred pages (plus their stylesheet) as one user in seconds.
    BULWARK_RATE_LIMITS__DEFAULT: '100000/minute',
    BULWARK_LOG_FORMAT: 'json',
    // tower_http at debug logs every response with its status: the tests read that access log.
    RUST_LOG: 'info,sqlx=warn,tower_http=debug',
  };
}

/** Creates a user with `bulwark users create NAME --password-stdin`. */
function createUser(env, username, password) {
  let r;
  for (let attempt = 1; ; attempt += 1) {
    r = spawnSync(BIN, ['users', 'create', username, '--password-stdin'], {
      env,
      input: `${password}\n`,
      encoding: 'utf8',
      timeout: 30_000,
    });
    // The binary could not be started at all (e.g. ETXTBSY while `cargo build` rewrites it on a
    // shared work tree): try again a few times. A command that ran and failed is not retried.
    if (!r.error || attempt === 5 || !['ETXTBSY', 'ENOENT', 'EACCES'].includes(r.error.code)) break;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_000);
  }
  if (r.error) throw new Error(`cannot run ${BIN}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`bulwark users create ${username} failed (${r.status}): ${r.stderr}${r.stdout}`);
  }
}

/**
 * Starts `bulwark serve --bind 127.0.0.1:0` (the port is read from its "listening" log line)
 * after creating `users` (names; each gets a random strong password). Resolves once /health
 * answers. Always call `stop()`.
 */
export async function startServer({ users = [] } = {}) {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`cargo build --bin bulwark\` first`);
  const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-browser-'));
  const env = serverEnv(dir);
  const passwords = {};
  try {
    for (const name of users) {
      passwords[name] = strongPassword();
      createUser(env, name, passwords[name]);
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const child = spawn(BIN, ['serve', '--bind', '127.0.0.1:0'], {
    env,
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  liveChildren.add(child);
  const log = [];
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    // Spawning failed (no 'exit' follows): report it as an exit.
    child.once('error', (err) => { log.push({ raw: `spawn error: ${err.message}` }); resolve({ code: err.code }); });
  });
  exited.then(() => liveChildren.delete(child));
  let pending = '';
  let resolveAddr;
  const addrPromise = new Promise((resolve) => { resolveAddr = resolve; });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (process.env.BROWSER_DEBUG) process.stderr.write(`[server] ${line}\n`);
      let entry;
      try { entry = JSON.parse(line); } catch { entry = { raw: line }; }
      log.push(entry);
      if (entry.fields?.message === 'listening' && entry.fields.addr) resolveAddr(entry.fields.addr);
    }
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const addr = await Promise.race([
      addrPromise,
      exited.then(({ code }) => { throw new Error(`server exited (${code}) before listening:\n${dump(log)}`); }),
      unrefSleep(STARTUP_MS).then(() => { throw new Error(`server did not listen in ${STARTUP_MS} ms:\n${dump(log)}`); }),
    ]);
    const base = `http://${addr}`;
    await waitForHealth(base);
    const port = Number(new URL(base).port);
    return {
      base, port, dir, env, passwords, log, stop,
      /** Responses the server logged: `{method, path, status}` in order. */
      responses: () => log
        .filter((e) => e.fields?.message === 'finished processing request')
        .map((e) => ({ method: e.span?.method, path: e.span?.route, status: e.fields.status })),
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function dump(log) {
  return log.slice(-20).map((e) => JSON.stringify(e)).join('\n');
}

async function waitForHealth(base) {
  const deadline = Date.now() + STARTUP_MS;
  for (;;) {
    try {
      const r = await fetch(`${base}/health`, { signal: AbortSignal.timeout(2_000) });
      if (r.ok && (await r.json()).status === 'ok') return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`${base}/health did not answer in time`);
    await sleep(100);
  }
}

// Children still running when the test process exits (an assertion thrown before `stop()`) are
// killed here, so no server outlives its test file.
const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
});

/** A timer that does not keep the process alive (for races against a deadline). */
function unrefSleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `POST /token` (OAuth2 password flow) from Node: the bearer access token. */
export async function bearerToken(base, username, password) {
  const r = await fetch(`${base}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password }),
    signal: AbortSignal.timeout(10_000),
  });
  if (r.status !== 200) throw new Error(`POST /token: ${r.status} ${await r.text()}`);
  return (await r.json()).access_token;
}

/** A JSON API call from Node with a bearer token: `{status, body}`. */
export async function api(base, token, method, pathname, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${base}${pathname}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await r.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: r.status, body: parsed, headers: r.headers };
}

/** Every item of the token's user (all pages). */
export async function listAllItems(base, token) {
  const items = [];
  for (let offset = 0; ; offset += 100) {
    const r = await api(base, token, 'GET', `/items/?limit=100&offset=${offset}`);
    if (r.status !== 200) throw new Error(`GET /items/: ${r.status} ${JSON.stringify(r.body)}`);
    items.push(...r.body.items);
    if (items.length >= r.body.total || r.body.items.length === 0) return items;
  }
}

/** Launches headless Chromium (Debian's) with the flags and a fresh profile. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (CI does it in .ci/run)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
}

function isLoopback(url) {
  let u;
  try { u = new URL(url); } catch { return false; }
  if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'about:') return true;
  if (u.protocol !== 'http:' && u.protocol !== 'https:' && u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    return false;
  }
  return u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]';
}

/**
 * A new browser context whose network is closed: every request that is not to the loopback
 * interface is aborted (`page.route`) and recorded in `blocked` (a test fails when it is not
 * empty). `requests` records every request URL the context made.
 *
 * `intercept: false` records the attempts without intercepting: Playwright answers CORS
 * preflights itself while it intercepts (permissively), so a test of the browser's own CORS
 * behaviour must not intercept. Non-loopback host names still fail to resolve
 * (`--host-resolver-rules` in CHROMIUM_ARGS).
 */
export async function closedContext(browser, options = {}, { intercept = true } = {}) {
  const context = await browser.newContext(options);
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const blocked = [];
  const requests = [];
  context.on('request', (req) => {
    requests.push({ method: req.method(), url: req.url() });
    if (!intercept && !isLoopback(req.url())) blocked.push(req.url());
  });
  if (intercept) {
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (isLoopback(url)) return route.continue();
      blocked.push(url);
      return route.abort('blockedbyclient');
    });
  }
  // Service workers and WebSockets bypass `route`; none is expected, but record any.
  context.on('serviceworker', (sw) => blocked.push(`service worker ${sw.url()}`));
  return { context, blocked, requests };
}

/** Logs in through the /login form by typing and clicking; resolves with the POST's response. */
export async function loginWithForm(page, base, username, password) {
  await page.goto(`${base}/login`);
  await page.locator('#username').pressSequentially(username, { delay: 5 });
  await page.locator('#password').pressSequentially(password, { delay: 5 });
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/login` && r.request().method() === 'POST'),
    page.locator('#submit').click(),
  ]);
  await page.waitForLoadState('load');
  return response;
}

/** The CSP of a response, parsed into `{directive: [sources]}`. */
export function parseCsp(value) {
  const out = {};
  for (const part of (value || '').split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) out[name.toLowerCase()] = sources;
  }
  return out;
}

/**
 * A throw-away HTTP server on 127.0.0.1 (another port, so another origin) serving `pages`
 * (`{'/path': html}`); records what it receives. Always call `close()`.
 */
export async function startSiteServer(pages) {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push({ method: req.method, url: req.url });
    const page = pages[new URL(req.url, 'http://x').pathname];
    if (page === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(typeof page === 'function' ? page(req) : page);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    hits,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}

// ---- Mail (the outbox) -------------------------------------------------------------------------
// With no `smtp_url` the server writes each mail as an RFC 5322 `.eml` file to
// `<data dir>/outbox/`, named `<unix-millis>-<random>.eml` (a listing sorts oldest first).

/** The `.eml` file names of the server's outbox, oldest first (none yet: `[]`). */
export function outboxFiles(server) {
  const dir = path.join(server.dir, 'outbox');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.endsWith('.eml')).sort().map((n) => path.join(dir, n));
}

/**
 * Waits until the outbox holds more than `seen` mails (`seen`: the count before the action that
 * sends one) and answers the newest, parsed (see `parseEml`).
 */
export async function waitForMail(server, seen, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const files = outboxFiles(server);
    if (files.length > seen) return parseEml(readFileSync(files[files.length - 1], 'utf8'));
    if (Date.now() > deadline) throw new Error(`no new mail in ${server.dir}/outbox after ${timeoutMs} ms (${files.length} there)`);
    await sleep(50);
  }
}

function decodeQuotedPrintable(body) {
  const bytes = [];
  const text = body.replace(/=\r?\n/g, ''); // soft line breaks
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(text[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function splitMessage(raw) {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice(m.index + m[0].length) : '';
  const headers = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers, body };
}

function decodePart({ headers, body }) {
  const encoding = (headers['content-transfer-encoding'] || '7bit').toLowerCase();
  if (encoding === 'quoted-printable') return decodeQuotedPrintable(body);
  if (encoding === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  return body;
}

/**
 * A small RFC 5322 / MIME reader for the server's mails: `{headers, to, from, subject, text,
 * html}` (`text` and `html`: the decoded text/plain and text/html parts of a
 * multipart/alternative message, or the single body).
 */
export function parseEml(raw) {
  const top = splitMessage(raw);
  const out = {
    headers: top.headers,
    to: top.headers.to ?? '',
    from: top.headers.from ?? '',
    subject: top.headers.subject ?? '',
    text: '',
    html: '',
  };
  const type = top.headers['content-type'] ?? 'text/plain';
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  const parts = [];
  if (/^multipart\//i.test(type) && boundary) {
    const chunks = raw.slice(raw.length - top.body.length).split(`--${boundary}`);
    // chunks[0]: the preamble; the last: the epilogue after the closing `--boundary--`.
    for (const chunk of chunks.slice(1)) {
      if (chunk.startsWith('--')) break;
      parts.push(splitMessage(chunk.replace(/^\r?\n/, '').replace(/\r?\n$/, '')));
    }
  } else {
    parts.push(top);
  }
  for (const part of parts) {
    const partType = (part.headers['content-type'] ?? 'text/plain').toLowerCase();
    if (partType.startsWith('text/plain') && !out.text) out.text = decodePart(part);
    if (partType.startsWith('text/html') && !out.html) out.html = decodePart(part);
  }
  return out;
}

/**
 * The link to `page` (e.g. `/password-reset`) in a mail's text part, checking that the HTML
 * part links to the very same URL. Answers `{link, token}`.
 */
export function mailLink(mail, page) {
  const match = new RegExp(`https?://\\S+?${page.replace(/[/-]/g, '\\$&')}\\?token=([A-Za-z0-9_-]+)`).exec(mail.text);
  if (!match) throw new Error(`no ${page}?token= link in the mail's text: ${JSON.stringify(mail.text)}`);
  const [link, token] = match;
  const hrefs = [...mail.html.matchAll(/href="([^"]*)"/g)].map((h) => h[1].replaceAll('&amp;', '&'));
  if (!hrefs.includes(link)) throw new Error(`the HTML part does not link to ${link}: ${JSON.stringify(hrefs)}`);
  return { link, token };
}

/**
 * Records, for `page`, every CSP violation (`securitypolicyviolation` events, installed before
 * any script of the page runs) and every console message about the CSP, plus page errors.
 * `read()` answers `{violations, cspConsole, errors}` (let events arrive before reading).
 */
export async function watchCsp(page) {
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push({
        violatedDirective: e.violatedDirective,
        blockedURI: e.blockedURI,
        source: `${e.sourceFile}:${e.lineNumber}:${e.columnNumber}`,
        sample: e.sample,
      });
    });
  });
  const cspConsole = [];
  const errors = [];
  page.on('console', (m) => {
    if (/Content.Security.Policy/i.test(m.text())) cspConsole.push(`${m.type()}: ${m.text()}`);
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return {
    read: async () => ({
      violations: await page.evaluate(() => window.__cspViolations ?? null),
      cspConsole: [...cspConsole],
      errors: [...errors],
    }),
  };
}
