// Cross-site request forgery for real: pages on other origins (another port of 127.0.0.1, which
// is same-site but cross-origin, and `localhost`, which is cross-site) make the logged-in victim's
// browser send forms and fetches at POST /items/ and POST /logout. Nothing may change; where the
// request reaches the server with the session cookie, the answer is 403.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  bearerToken, closedContext, launchBrowser, listAllItems, loginWithForm, sleep, startServer,
  startSiteServer,
} from './helpers.mjs';

const REFUSAL = 'CSRF token missing or invalid';

let server;
let browser;
let attacker;
let victimToken;
let attackerToken; // a real token the attacker got for *their own* CSRF cookie

function attackPages(target) {
  const item = (name) => JSON.stringify({ name, price: 1 });
  const autoSubmit = '<script>document.forms[0].submit()</script>';
  const guess = 'AAAAAGsMGCyiOffn3RgaRv6ngRWOfBIlB1bddpzb5ohTksNwuW3FJgP7loV6r1FNeuXzfbX4j-c';
  const fields = (name, token) => `
    <input type="hidden" name="name" value="${name}">
    <input type="hidden" name="price" value="1">
    <input type="hidden" name="csrf_token" value="${token}">`;
  return {
    '/form-urlencoded': () => `<!doctype html><title>win a prize</title>
      <form method="POST" action="${target}/items/">${fields('csrf-form', guess)}</form>${autoSubmit}`,
    '/form-urlencoded-real-token': () => `<!doctype html><title>win a prize</title>
      <form method="POST" action="${target}/items/">${fields('csrf-form-token', attackerToken)}</form>${autoSubmit}`,
    // The classic JSON-over-text/plain trick: the body reads
    // {"name":"csrf-plain","price":1,"description":"="}
    '/form-text-plain': () => `<!doctype html><title>win a prize</title>
      <form method="POST" enctype="text/plain" action="${target}/items/">
        <input type="hidden" name='{"name":"csrf-plain","price":1,"description":"' value='"}'>
      </form>${autoSubmit}`,
    // No Referer, and `Origin: null` on the POST.
    '/form-no-referrer': () => `<!doctype html><meta name="referrer" content="no-referrer">
      <title>win a prize</title>
      <form method="POST" action="${target}/items/">${fields('csrf-noref', attackerToken)}</form>${autoSubmit}`,
    // A sandboxed frame has an opaque origin (`Origin: null`).
    '/form-sandboxed': () => `<!doctype html><title>win a prize</title>
      <iframe sandbox="allow-forms allow-scripts" srcdoc="${`
        <form method='POST' action='${target}/items/'>${fields('csrf-sandbox', attackerToken).replaceAll('"', "'")}</form>
        <script>document.forms[0].submit()</script>`.replaceAll('"', '&quot;')}"></iframe>`,
    '/form-logout': () => `<!doctype html><title>win a prize</title>
      <form method="POST" action="${target}/logout"><input type="hidden" name="csrf_token" value="${attackerToken}"></form>${autoSubmit}`,
    '/fetch': () => `<!doctype html><title>loading</title><script>
      (async () => {
        const T = ${JSON.stringify(target)};
        const results = {};
        const attempt = async (name, run) => {
          try {
            const r = await run();
            results[name] = r.type === 'opaque' ? 'opaque' : 'read:' + r.status + ':' + (await r.text());
          } catch (e) {
            results[name] = 'error:' + e.name;
          }
        };
        await attempt('json-credentials', () => fetch(T + '/items/', {
          method: 'POST', credentials: 'include',
          headers: { 'Content-Type': 'application/json' }, body: ${JSON.stringify(item('csrf-fetch-json'))} }));
        await attempt('guessed-header', () => fetch(T + '/items/', {
          method: 'POST', credentials: 'include',
          headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': ${JSON.stringify(guess)} },
          body: ${JSON.stringify(item('csrf-fetch-guess'))} }));
        await attempt('real-token-header', () => fetch(T + '/items/', {
          method: 'POST', credentials: 'include',
          headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': ${JSON.stringify(attackerToken)} },
          body: ${JSON.stringify(item('csrf-fetch-token'))} }));
        await attempt('no-cors-text-plain', () => fetch(T + '/items/', {
          method: 'POST', mode: 'no-cors', credentials: 'include',
          headers: { 'Content-Type': 'text/plain' }, body: ${JSON.stringify(item('csrf-fetch-plain'))} }));
        await attempt('no-cors-form', () => fetch(T + '/items/', {
          method: 'POST', mode: 'no-cors', credentials: 'include',
          body: new URLSearchParams({ name: 'csrf-fetch-form', price: '1', csrf_token: ${JSON.stringify(attackerToken)} }) }));
        await attempt('read-csrf-token', () => fetch(T + '/csrftoken/', { credentials: 'include' }));
        await attempt('read-items', () => fetch(T + '/items/', { credentials: 'include' }));
        window.__results = results;
        document.title = 'done';
      })();
    </script>`,
  };
}

before(async () => {
  server = await startServer({ users: ['victim'] });
  victimToken = await bearerToken(server.base, 'victim', server.passwords.victim);
  // The attacker's own (valid) CSRF token, bound to a cookie the victim's browser does not have.
  const r = await fetch(`${server.base}/csrftoken/`);
  attackerToken = (await r.json()).csrf_token;
  assert.match(r.headers.get('set-cookie') ?? '', /^csrftoken=/);
  attacker = await startSiteServer(attackPages(server.base));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await attacker?.close();
  await server?.stop();
});

/** Waits until the server has logged a response matching `match` after log index `from`. */
async function serverSaw(from, match, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = server.responses().slice(from).filter(match);
    if (seen.length > 0 || Date.now() > deadline) return seen;
    await sleep(50);
  }
}

const isUnsafe = (r) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method);

// Two runs: the browser as it is (its CORS stops preflighted fetches before the POST is sent),
// and with every CORS preflight answered "allowed" (Playwright does that while it intercepts
// requests) — as if CORS were misconfigured — so that every forged POST reaches the server.
test('forms and fetches from other origins cannot create items or log the victim out', { timeout: 120_000 }, async (t) => {
  await forgeries(t, { intercept: false });
});

test('the same forgeries with CORS preflights forced open reach the server and get 403', { timeout: 120_000 }, async (t) => {
  await forgeries(t, { intercept: true });
});

async function forgeries(t, { intercept }) {
  const before = await listAllItems(server.base, victimToken);
  const { context, blocked } = await closedContext(browser, {}, { intercept });
  const report = [];
  try {
    // The victim logs in (session cookie in this browser context).
    const page = await context.newPage();
    const login = await loginWithForm(page, server.base, 'victim', server.passwords.victim);
    assert.equal(login.status(), 200);
    assert.ok((await context.cookies(server.base)).some((c) => c.name === 'session'));

    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
    // What the browser saw of unsafe requests to the server.
    const seenByBrowser = [];
    const serverOrigin = new URL(server.base).origin;
    page.on('response', async (r) => {
      const req = r.request();
      if (new URL(r.url()).origin === serverOrigin && isUnsafe({ method: req.method() })) {
        const headers = await req.allHeaders().catch(() => ({}));
        seenByBrowser.push({
          method: req.method(), url: r.url(), status: r.status(),
          cookieSent: /(^|;\s*)session=/.test(headers.cookie ?? ''),
        });
      }
    });

    const attackerOrigins = [
      { origin: `http://127.0.0.1:${attacker.port}`, relation: 'same-site, cross-origin (other port)' },
      { origin: `http://localhost:${attacker.port}`, relation: 'cross-site (localhost vs 127.0.0.1)' },
    ];
    for (const { origin, relation } of attackerOrigins) {
      for (const path of ['/form-urlencoded', '/form-urlencoded-real-token', '/form-text-plain',
        '/form-no-referrer', '/form-sandboxed', '/form-logout']) {
        const from = server.responses().length;
        const expectedPath = path === '/form-logout' ? '/logout' : '/items/';
        seenByBrowser.length = 0;
        await page.goto(`${origin}${path}`);
        const seen = await serverSaw(from, (r) => r.method === 'POST' && r.path === expectedPath, 10_000);
        assert.equal(seen.length, 1, `${origin}${path}: the forged POST reached the server once`);
        const status = seen[0].status;
        // The browser's view (did it attach the cookie?), when its response event arrives.
        let browserSide;
        for (let waited = 0; waited < 1_000 && !browserSide; waited += 50) {
          browserSide = seenByBrowser.find((r) => r.url.endsWith(expectedPath));
          if (!browserSide) await sleep(50);
        }
        report.push({ attack: `${origin}${path}`, relation, server: status, cookieSent: browserSide?.cookieSent });
        assert.ok([401, 403].includes(status), `${origin}${path}: answered ${status}`);
        if (browserSide?.cookieSent) {
          assert.equal(status, 403, `${origin}${path}: the session cookie was sent, so the CSRF layer must refuse`);
        }
        if (status === 403) {
          const body = await page.evaluate(() => document.body?.innerText ?? '').catch(() => '');
          if (body) assert.match(body, new RegExp(REFUSAL));
        }
      }

      const from = server.responses().length;
      await page.goto(`${origin}/fetch`);
      await page.waitForFunction(() => document.title === 'done', null, { timeout: 15_000 });
      const results = await page.evaluate(() => window.__results);
      // Wait until the two no-cors POSTs are logged, then read everything the server answered.
      await serverSaw(from, (r) => r.method === 'POST', 5_000);
      await sleep(200);
      const answered = server.responses().slice(from);
      report.push({ attack: `${origin}/fetch`, relation, browser: results, server: answered });
      // Preflighted requests (JSON, custom header) are stopped by the browser: CORS is off.
      assert.equal(results['json-credentials'], 'error:TypeError');
      assert.equal(results['guessed-header'], 'error:TypeError');
      assert.equal(results['real-token-header'], 'error:TypeError');
      // Simple requests go out but their answers cannot be read.
      assert.equal(results['no-cors-text-plain'], 'opaque');
      assert.equal(results['no-cors-form'], 'opaque');
      // Nor can the attacker read a token or the victim's data.
      assert.equal(results['read-csrf-token'], 'error:TypeError');
      assert.equal(results['read-items'], 'error:TypeError');
      const posts = answered.filter(isUnsafe);
      if (intercept) {
        assert.equal(posts.length, 5, `every forged POST reaches the server: ${JSON.stringify(answered)}`);
      } else {
        assert.equal(posts.length, 2, `only the two simple POSTs reach the server: ${JSON.stringify(answered)}`);
        const preflights = answered.filter((r) => r.method === 'OPTIONS');
        assert.ok(preflights.length >= 1, `the browser sent CORS preflights: ${JSON.stringify(answered)}`);
        for (const o of preflights) assert.ok(o.status >= 400, `no CORS preflight succeeds: ${JSON.stringify(o)}`);
      }
      for (const p of posts) assert.ok([401, 403].includes(p.status), JSON.stringify(p));
    }

    // Where the cookie is sent (the same-site origin), the CSRF layer refused every request.
    const sameSite = report.filter((r) => r.attack.startsWith(`http://127.0.0.1:${attacker.port}/form`));
    assert.ok(sameSite.some((r) => r.cookieSent), 'the same-site attacker pages carried the session cookie');
    for (const r of sameSite.filter((x) => x.cookieSent)) assert.equal(r.server, 403, r.attack);
    const sameSiteFetch = report.find((r) => r.attack === `http://127.0.0.1:${attacker.port}/fetch`);
    for (const p of sameSiteFetch.server.filter(isUnsafe)) assert.equal(p.status, 403, JSON.stringify(p));

    t.diagnostic(`CSRF attempts (intercept=${intercept}): ${JSON.stringify(report)}`);

    // Nothing was created, and the victim is still logged in (the forged logout failed).
    const afterItems = await listAllItems(server.base, victimToken);
    assert.deepEqual(afterItems.map((i) => i.id), before.map((i) => i.id), 'no item was created');
    assert.equal((await page.goto(`${server.base}/users/me`)).status(), 200, 'the session survived');
    assert.deepEqual(dialogs, []);
    assert.deepEqual(blocked, [], 'no request left the loopback interface');
  } finally {
    await context.close();
  }
}

test('the server\'s own page with the CSRF token creates an item (201); without it, 403', { timeout: 60_000 }, async () => {
  const { context, blocked } = await closedContext(browser);
  try {
    const page = await context.newPage();
    assert.equal((await loginWithForm(page, server.base, 'victim', server.passwords.victim)).status(), 200);
    await page.goto(`${server.base}/login`); // an HTML page of the server: its CSP allows fetch to self
    const result = await page.evaluate(async () => {
      const post = (headers) => fetch('/items/', {
        method: 'POST',
        credentials: 'include',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify({ name: 'legit-from-browser', price: 2.5, description: '<b>ok</b>' }),
      });
      const noToken = await post({});
      const badToken = await post({ 'X-CSRF-Token': 'AAAA' });
      const { csrf_token: token } = await (await fetch('/csrftoken/', { credentials: 'include' })).json();
      const ok = await post({ 'X-CSRF-Token': token });
      return {
        noToken: [noToken.status, await noToken.json()],
        badToken: badToken.status,
        ok: [ok.status, await ok.json()],
      };
    });
    assert.deepEqual(result.noToken, [403, { detail: REFUSAL }]);
    assert.equal(result.badToken, 403);
    assert.equal(result.ok[0], 201);
    assert.equal(result.ok[1].name, 'legit-from-browser');
    assert.equal(result.ok[1].description, '<b>ok</b>');
    const items = await listAllItems(server.base, victimToken);
    assert.deepEqual(items.filter((i) => i.name === 'legit-from-browser').map((i) => i.id), [result.ok[1].id]);
    assert.deepEqual(blocked, []);
  } finally {
    await context.close();
  }
});
