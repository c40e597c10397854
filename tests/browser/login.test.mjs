// Logging in through the /login form in a real browser; the pages' CSP; the form without script.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  api, bearerToken, closedContext, launchBrowser, loginWithForm, parseCsp, startServer,
} from './helpers.mjs';

let server;
let browser;

before(async () => {
  server = await startServer({ users: ['alice'] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a user logs in through the /login form and reaches /users/me with the session cookie', { timeout: 60_000 }, async () => {
  const { context, blocked } = await closedContext(browser);
  try {
    const page = await context.newPage();
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });

    // Before logging in: /users/me is refused.
    const anonymous = await page.goto(`${server.base}/users/me`);
    assert.equal(anonymous.status(), 401);

    // The form page hands out the CSRF cookie (HttpOnly, Lax) and a hidden token field.
    await page.goto(`${server.base}/login`);
    const hidden = await page.locator('input[type=hidden][name=csrf_token]').getAttribute('value');
    assert.ok(hidden && hidden.length > 20, 'the form carries a CSRF token');
    const csrfCookie = (await context.cookies(server.base)).find((c) => c.name === 'csrftoken');
    assert.ok(csrfCookie, 'GET /login sets the csrftoken cookie');
    assert.equal(csrfCookie.httpOnly, true);
    assert.equal(csrfCookie.sameSite, 'Lax');
    assert.equal(csrfCookie.path, '/');
    // A page script cannot read either cookie.
    assert.equal(await page.evaluate(() => document.cookie), '');

    const response = await loginWithForm(page, server.base, 'alice', server.passwords.alice);
    assert.equal(response.status(), 200);
    assert.deepEqual(await response.json(), { detail: 'OK' });

    const cookies = await context.cookies(server.base);
    const session = cookies.find((c) => c.name === 'session');
    assert.ok(session, `the session cookie is set (cookies: ${cookies.map((c) => c.name)})`);
    assert.equal(session.httpOnly, true, 'session cookie is HttpOnly');
    assert.equal(session.sameSite, 'Lax', 'session cookie is SameSite=Lax');
    assert.equal(session.path, '/');
    assert.equal(session.secure, false, 'plain HTTP without secure_cookies: not Secure');
    assert.ok(session.expires > Date.now() / 1000, 'the session cookie expires');
    assert.ok(!cookies.some((c) => c.name === 'csrftoken'), 'POST /login spends (clears) the CSRF cookie');
    assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the session');

    const me = await page.goto(`${server.base}/users/me`);
    assert.equal(me.status(), 200);
    const body = await me.json();
    assert.equal(body.username, 'alice');
    assert.deepEqual(body.roles, []);
    assert.equal(body.disabled, false);
    assert.ok(!JSON.stringify(body).includes('$argon2'), 'no password hash in /users/me');
    // The page shows that JSON too.
    assert.match(await page.locator('body').innerText(), /"username":\s*"alice"/);
    assert.match(me.headers()['cache-control'] ?? '', /no-store/);

    // The session works on other authenticated routes, and a same-origin logout (with a CSRF
    // token) clears it.
    const protectedPage = await page.goto(`${server.base}/protected`);
    assert.equal(protectedPage.status(), 200);
    // Scripts run from an HTML page of the server (API responses carry `default-src 'none'`).
    await page.goto(`${server.base}/login`);
    const logout = await page.evaluate(async () => {
      const { csrf_token: token } = await (await fetch('/csrftoken/')).json();
      const refused = await fetch('/logout', { method: 'POST' });
      const ok = await fetch('/logout', { method: 'POST', headers: { 'X-CSRF-Token': token } });
      return { refused: refused.status, ok: ok.status };
    });
    assert.deepEqual(logout, { refused: 403, ok: 204 });
    assert.ok(!(await context.cookies(server.base)).some((c) => c.name === 'session'), 'logout clears the session cookie');
    assert.equal((await page.goto(`${server.base}/users/me`)).status(), 401);

    assert.deepEqual(dialogs, []);
    assert.deepEqual(blocked, [], 'no request left the loopback interface');
  } finally {
    await context.close();
  }
});

test('a wrong password in the form answers 401 and sets no session', { timeout: 30_000 }, async () => {
  const { context, blocked } = await closedContext(browser);
  try {
    const page = await context.newPage();
    const response = await loginWithForm(page, server.base, 'alice', 'not-the-password-at-all');
    assert.equal(response.status(), 401);
    assert.deepEqual(await response.json(), { detail: 'Incorrect username or password' });
    assert.ok(!(await context.cookies(server.base)).some((c) => c.name === 'session'));
    assert.deepEqual(blocked, []);
  } finally {
    await context.close();
  }
});

test('/login and /items/{id}/view send a CSP allowing scripts and styles from self only', { timeout: 30_000 }, async () => {
  const token = await bearerToken(server.base, 'alice', server.passwords.alice);
  const created = await api(server.base, token, 'POST', '/items/', { name: 'csp-check', price: 1 });
  assert.equal(created.status, 201);
  const { context, blocked } = await closedContext(browser);
  try {
    const page = await context.newPage();
    await loginWithForm(page, server.base, 'alice', server.passwords.alice);
    for (const path of ['/login', `/items/${created.body.id}/view`]) {
      const response = await page.goto(`${server.base}${path}`);
      assert.equal(response.status(), 200, path);
      const headers = response.headers();
      assert.match(headers['content-type'], /^text\/html/, path);
      const csp = parseCsp(headers['content-security-policy']);
      assert.deepEqual(csp['default-src'], ["'none'"], `${path}: default-src 'none'`);
      assert.deepEqual(csp['script-src'], ["'self'"], `${path}: script-src 'self' only`);
      assert.deepEqual(csp['style-src'], ["'self'"], `${path}: style-src 'self' only`);
      assert.deepEqual(csp['base-uri'], ["'none'"], path);
      assert.deepEqual(csp['frame-ancestors'], ["'none'"], path);
      assert.equal(headers['x-content-type-options'], 'nosniff', path);
      assert.equal(headers['x-frame-options'], 'DENY', path);
      assert.equal(headers['referrer-policy'], 'no-referrer', path);
      assert.ok(!('server' in headers), `${path}: no Server banner`);
      // The page itself uses no inline script and no inline handler.
      const inline = await page.evaluate(() => ({
        scripts: [...document.scripts].map((s) => s.src || 'inline'),
        handlers: [...document.querySelectorAll('*')].flatMap((el) => [...el.attributes]
          .filter((a) => /^on/i.test(a.name)).map((a) => `${el.tagName}.${a.name}`)),
      }));
      assert.deepEqual(inline, { scripts: [], handlers: [] }, path);
      // The stylesheet loaded (it is on the same origin, so the CSP allows it).
      const styled = await page.evaluate(() => document.styleSheets.length);
      assert.equal(styled, 1, `${path}: /static/bulwark.css applies`);
    }
    // The CSP really binds: an inline script injected after load does not run.
    const ran = await page.evaluate(() => new Promise((resolve) => {
      document.addEventListener('securitypolicyviolation', (e) => resolve(`blocked:${e.violatedDirective}`));
      const s = document.createElement('script');
      s.textContent = 'window.__inline = 1';
      document.body.append(s);
      setTimeout(() => resolve(window.__inline === 1 ? 'ran' : 'silent'), 1_000);
    }));
    assert.match(ran, /^blocked:script-src/);
    assert.deepEqual(blocked, []);
  } finally {
    await context.close();
  }
});

test('the login form works with JavaScript turned off', { timeout: 30_000 }, async () => {
  const { context, blocked } = await closedContext(browser, { javaScriptEnabled: false });
  try {
    const page = await context.newPage();
    const response = await loginWithForm(page, server.base, 'alice', server.passwords.alice);
    assert.equal(response.status(), 200);
    assert.ok((await context.cookies(server.base)).some((c) => c.name === 'session' && c.httpOnly));
    const me = await page.goto(`${server.base}/users/me`);
    assert.equal(me.status(), 200);
    assert.equal((await me.json()).username, 'alice');
    assert.deepEqual(blocked, []);
  } finally {
    await context.close();
  }
});
