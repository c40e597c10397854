// The pages that mail links open, in a real browser: the password-reset page (a form posting to
// /password-reset/confirm) and the e-mail verification page (a button posting to
// /verify-email/confirm). The links are read from the mails the server writes to its outbox
// (no `smtp_url`), opened in headless Chromium, and used the way a person would: typing, pressing
// the button, reading the status line that static/account.js fills in. Also: the pages load under
// the strict HTML CSP with no violation, a weak password shows the server's 422 message and
// leaves the form usable, opening a verification link alone verifies nothing, and a page on
// another origin cannot submit the reset form without the page's CSRF token.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  api, bearerToken, closedContext, launchBrowser, loginWithForm, mailLink, outboxFiles, parseCsp,
  sleep, startServer, startSiteServer, strongPassword, waitForMail, watchCsp,
} from './helpers.mjs';

const RESET_REQUESTED = 'If the address is known, a reset link is on its way';
const RESET_DONE = 'Your password has been changed.';
const VERIFY_DONE = 'Your email address is confirmed.';
// What a browser's own form post gets when refused: a page saying the form expired.
const REFUSAL = 'This page has expired';
// 12+ characters (the field's `minlength`), so the browser lets it through, but weak for any
// strength estimator: the server must answer 422.
const WEAK_PASSWORD = 'aaaaaaaaaaaa';
// account.js hides the form once the server accepted it (`form.hidden = true`); bulwark.css
// keeps `[hidden]` hidden over its own `form { display: grid }`.
const HIDDEN_FORM = 'the form is hidden once done';

let server;
let browser;

before(async () => {
  server = await startServer({ users: ['alice', 'bob', 'dora', 'erin'] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** `POST /password-reset/request` from Node; asserts the contract's fixed answer. */
async function requestReset(base, email) {
  const r = await fetch(`${base}/password-reset/request`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email }),
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(r.status, 202, `POST /password-reset/request: ${r.status}`);
  assert.deepEqual(await r.json(), { detail: RESET_REQUESTED });
}

/** `POST /token` from Node: its status only. */
async function tokenStatus(base, username, password) {
  const r = await fetch(`${base}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password }),
    signal: AbortSignal.timeout(10_000),
  });
  await r.arrayBuffer();
  return r.status;
}

/**
 * Gives `username` the address `email` through POST /users/me/email (the CLI has no e-mail
 * flag); answers the verification mail that this sends and the bearer token used.
 */
async function setEmail(srv, username, email) {
  const token = await bearerToken(srv.base, username, srv.passwords[username]);
  const seen = outboxFiles(srv).length;
  const r = await api(srv.base, token, 'POST', '/users/me/email', { email });
  assert.equal(r.status, 200, `POST /users/me/email: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.email, email);
  assert.equal(r.body.email_verified, false);
  const mail = await waitForMail(srv, seen);
  assert.equal(mail.to, email);
  assert.equal(mail.subject, 'Confirm your email address');
  return { token, mail };
}

/** Asks for a reset link for `email` and answers it, read from the outbox. */
async function resetLink(srv, email) {
  const seen = outboxFiles(srv).length;
  await requestReset(srv.base, email);
  const mail = await waitForMail(srv, seen);
  assert.equal(mail.to, email);
  assert.equal(mail.subject, 'Reset your password');
  const { link, token } = mailLink(mail, '/password-reset');
  // `public_url` defaults to the address really bound: the link points at this server.
  assert.equal(link, `${srv.base}/password-reset?token=${token}`);
  assert.ok(token.length >= 22, 'at least 128 bits of token');
  return { link, token };
}

/** Checks the headers of an account page: HTML, strict CSP, not cached. */
function assertPageHeaders(response, what) {
  assert.equal(response.status(), 200, what);
  const headers = response.headers();
  assert.match(headers['content-type'], /^text\/html/, what);
  const csp = parseCsp(headers['content-security-policy']);
  assert.deepEqual(csp['script-src'], ["'self'"], `${what}: script-src 'self' only`);
  assert.deepEqual(csp['style-src'], ["'self'"], `${what}: style-src 'self' only`);
  assert.deepEqual(csp['form-action'], ["'self'"], what);
  assert.deepEqual(csp['frame-ancestors'], ["'none'"], what);
  assert.match(headers['cache-control'] ?? '', /no-store/, `${what}: the token-bearing page is not cached`);
  assert.equal(headers['referrer-policy'], 'no-referrer', `${what}: the token does not leak by Referer`);
}

/** Presses the page's submit button; resolves with the POST to `path` it makes. */
async function press(page, base, path) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}${path}` && r.request().method() === 'POST'),
    page.locator('#submit').click(),
  ]);
  return response;
}

/** The status line once account.js has written something in it. */
async function statusText(page) {
  const result = page.locator('#result');
  await page.waitForFunction(() => document.getElementById('result')?.textContent.trim() !== '');
  return (await result.innerText()).trim();
}

/** Asserts that the page's CSP blocked nothing and account.js was the page's only script. */
async function assertNoCspViolation(page, csp, what) {
  await sleep(200); // violation events are dispatched asynchronously
  const seen = await csp.read();
  assert.ok(Array.isArray(seen.violations), `${what}: the violation listener was installed`);
  assert.deepEqual(seen.violations, [], `${what}: no CSP violation`);
  assert.deepEqual(seen.cspConsole, [], `${what}: the console reported no CSP violation`);
  assert.deepEqual(seen.errors.filter((e) => e.startsWith('pageerror')), [], `${what}: no script error`);
  const scripts = await page.evaluate(() => ({
    scripts: [...document.scripts].map((s) => s.src || 'inline'),
    handlers: [...document.querySelectorAll('*')].flatMap((el) => [...el.attributes]
      .filter((a) => /^on/i.test(a.name)).map((a) => `${el.tagName}.${a.name}`)),
    sheets: document.styleSheets.length,
  }));
  assert.deepEqual(scripts.scripts, [`${new URL(page.url()).origin}/static/account.js`], what);
  assert.deepEqual(scripts.handlers, [], `${what}: no inline handler`);
  assert.equal(scripts.sheets, 1, `${what}: the stylesheet applies`);
}

test('a reset link opened in the browser sets a new password; a weak one shows the 422 message', { timeout: 90_000 }, async (t) => {
  // Arrange: alice has an address, a bearer token from her old password, and a reset mail.
  const oldPassword = server.passwords.alice;
  const { token: oldBearer } = await setEmail(server, 'alice', 'alice@example.com');
  const { link, token } = await resetLink(server, 'alice@example.com');
  const newPassword = strongPassword();
  const { context, blocked } = await closedContext(browser);
  try {
    const page = await context.newPage();
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
    const csp = await watchCsp(page);

    // Act: open the link from the mail.
    const opened = await page.goto(link);

    // Assert: the form, carrying the link's token and a CSRF token bound to a fresh cookie.
    assertPageHeaders(opened, '/password-reset');
    assert.equal(await page.locator('form input[type=hidden][name=token]').getAttribute('value'), token);
    const csrfField = await page.locator('form input[type=hidden][name=csrf_token]').getAttribute('value');
    assert.ok(csrfField && csrfField.length > 20, 'the form carries a CSRF token');
    const cookie = (await context.cookies(server.base)).find((c) => c.name === 'csrftoken');
    assert.ok(cookie, 'the page sets the csrftoken cookie');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Lax');
    await assertNoCspViolation(page, csp, '/password-reset on load');

    // Act: a weak password, typed and submitted with the button.
    await page.locator('#new_password').pressSequentially(WEAK_PASSWORD, { delay: 2 });
    const weak = await press(page, server.base, '/password-reset/confirm');

    // Assert: 422, its message shown in the page, and the form still usable.
    assert.equal(weak.status(), 422);
    const weakBody = await weak.json();
    assert.ok(Array.isArray(weakBody.detail) && weakBody.detail.length > 0, JSON.stringify(weakBody));
    assert.ok(!JSON.stringify(weakBody).includes(WEAK_PASSWORD), 'the 422 does not echo the password');
    const weakShown = await statusText(page);
    assert.equal(weakShown, weakBody.detail.map((e) => e.msg).join(' '), 'the page shows the server\'s message');
    t.diagnostic(`weak password message shown: ${JSON.stringify(weakShown)}`);
    assert.ok(await page.locator('form').isVisible(), 'the form stays on screen');
    assert.ok(await page.locator('#submit').isEnabled(), 'the button is enabled again');
    assert.ok(await page.locator('#new_password').isEditable(), 'the field can be edited');
    assert.equal(page.url(), link, 'the page did not navigate away (the script posted it)');
    assert.equal(await tokenStatus(server.base, 'alice', oldPassword), 200, 'the weak password was not set');

    // Act: a strong password in the same form (the token is still usable after a 422).
    await page.locator('#new_password').fill('');
    await page.locator('#new_password').pressSequentially(newPassword, { delay: 2 });
    const done = await press(page, server.base, '/password-reset/confirm');

    // Assert: 204, the confirmation in the page, the form gone.
    assert.equal(done.status(), 204);
    const doneShown = await statusText(page);
    assert.ok(doneShown.startsWith(RESET_DONE), `the page says the password changed: ${doneShown}`);
    // account.js sets `form.hidden` once done; checked last (see the end of the test).
    const formShownWhenDone = await page.locator('form').isVisible();
    assert.ok(await page.locator('#submit').isDisabled(), 'the button cannot post the spent token again');
    await assertNoCspViolation(page, csp, '/password-reset after both submissions');

    // Assert: the old password fails, through the /login form in this browser and POST /token;
    // the new one logs in through the form; every earlier token was revoked.
    const oldLogin = await loginWithForm(page, server.base, 'alice', oldPassword);
    assert.equal(oldLogin.status(), 401, 'the old password no longer logs in');
    assert.equal(await tokenStatus(server.base, 'alice', oldPassword), 401);
    const newLogin = await loginWithForm(page, server.base, 'alice', newPassword);
    assert.equal(newLogin.status(), 200, `the new password logs in: ${await newLogin.text()}`);
    const me = await page.goto(`${server.base}/users/me`);
    assert.equal(me.status(), 200);
    assert.equal((await me.json()).username, 'alice');
    assert.equal((await api(server.base, oldBearer, 'GET', '/users/me')).status, 401, 'the old access token is revoked');

    // Act + Assert: the spent link, opened again, says so in the page.
    const again = await context.newPage();
    const againCsp = await watchCsp(again);
    assertPageHeaders(await again.goto(link), '/password-reset (spent link)');
    await again.locator('#new_password').fill(strongPassword());
    const spent = await press(again, server.base, '/password-reset/confirm');
    assert.equal(spent.status(), 400);
    assert.equal(await statusText(again), 'Invalid or expired token');
    assert.ok(await again.locator('#submit').isEnabled());
    await assertNoCspViolation(again, againCsp, '/password-reset (spent link)');
    const loginAgain = await tokenStatus(server.base, 'alice', newPassword);
    assert.equal(loginAgain, 200, 'the spent link changed nothing');

    assert.deepEqual(dialogs, []);
    assert.deepEqual(blocked, [], 'no request left the loopback interface');
    assert.equal(formShownWhenDone, false, HIDDEN_FORM);
  } finally {
    await context.close();
  }
});

test('a reset page whose CSRF cookie was spent says it expired, and a reload makes it work', { timeout: 60_000 }, async () => {
  // Arrange: dora opens her reset link, then logs in in another tab of the same browser — a
  // successful POST /login spends (clears) the CSRF cookie the reset page's token is bound to.
  await setEmail(server, 'dora', 'dora@example.com');
  const { link } = await resetLink(server, 'dora@example.com');
  const newPassword = strongPassword();
  const { context, blocked } = await closedContext(browser);
  try {
    const page = await context.newPage();
    const csp = await watchCsp(page);
    assertPageHeaders(await page.goto(link), '/password-reset');
    const other = await context.newPage();
    assert.equal((await loginWithForm(other, server.base, 'dora', server.passwords.dora)).status(), 200);
    assert.ok(!(await context.cookies(server.base)).some((c) => c.name === 'csrftoken'), 'the login spent the cookie');

    // Act: submit the reset page that is still open.
    await page.locator('#new_password').fill(newPassword);
    const stale = await press(page, server.base, '/password-reset/confirm');

    // Assert: 403, the page says what to do, and nothing changed.
    // (The page's script does not read a 403's body, and Playwright cannot read a fetch body
    // the page left unread: only the status is checked here.)
    assert.equal(stale.status(), 403);
    assert.equal(await statusText(page), 'This page has expired. Reload it and try again.');
    assert.equal(await tokenStatus(server.base, 'dora', server.passwords.dora), 200);

    // Act: reload, as told, and submit again.
    assertPageHeaders(await page.reload(), '/password-reset (reloaded)');
    await page.locator('#new_password').fill(newPassword);
    const done = await press(page, server.base, '/password-reset/confirm');

    // Assert: the link's token survived the refused post; the password is set.
    assert.equal(done.status(), 204);
    assert.ok((await statusText(page)).startsWith(RESET_DONE));
    assert.equal(await tokenStatus(server.base, 'dora', newPassword), 200);
    assert.equal(await tokenStatus(server.base, 'dora', server.passwords.dora), 401);
    await assertNoCspViolation(page, csp, '/password-reset (reloaded)');
    assert.deepEqual(blocked, []);
  } finally {
    await context.close();
  }
});

test('with JavaScript off the reset form still posts and sets the password', { timeout: 60_000 }, async (t) => {
  // Arrange
  await setEmail(server, 'erin', 'erin@example.com');
  const { link } = await resetLink(server, 'erin@example.com');
  const newPassword = strongPassword();
  const { context, blocked } = await closedContext(browser, { javaScriptEnabled: false });
  try {
    const page = await context.newPage();
    assertPageHeaders(await page.goto(link), '/password-reset (no script)');

    // Act: a plain HTML form submission (application/x-www-form-urlencoded, with csrf_token).
    await page.locator('#new_password').fill(newPassword);
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${server.base}/password-reset/confirm`),
      page.locator('#submit').click(),
    ]);

    // Assert: accepted; the password is set; the browser shows a page saying so (a browser's
    // own form post gets a page, 200, where the API answers 204).
    assert.equal(response.status(), 200);
    assert.equal(await tokenStatus(server.base, 'erin', newPassword), 200);
    assert.equal(await tokenStatus(server.base, 'erin', server.passwords.erin), 401);
    await page.waitForURL(`${server.base}/password-reset/confirm`);
    assert.ok((await page.locator('#result').innerText()).startsWith(RESET_DONE));
    t.diagnostic(`after a no-script submission the browser shows ${page.url()}`);
    assert.deepEqual(blocked, []);
  } finally {
    await context.close();
  }
});

test('a verification link verifies only when the button is pressed, not on opening', { timeout: 60_000 }, async () => {
  // Arrange: bob sets an address; the mail carries the verification link.
  const { token: bearer, mail } = await setEmail(server, 'bob', 'bob@example.com');
  const { link, token } = mailLink(mail, '/verify-email');
  assert.equal(link, `${server.base}/verify-email?token=${token}`);
  const { context, blocked } = await closedContext(browser);
  try {
    const page = await context.newPage();
    const csp = await watchCsp(page);
    const from = server.responses().length;

    // Act: open the link.
    const opened = await page.goto(link);

    // Assert: a page with a button; the GET alone verified nothing, and no script posted.
    assertPageHeaders(opened, '/verify-email');
    assert.equal(await page.locator('form input[type=hidden][name=token]').getAttribute('value'), token);
    assert.ok(await page.locator('#submit').isVisible());
    await page.waitForLoadState('networkidle');
    await sleep(300);
    const meBefore = await api(server.base, bearer, 'GET', '/users/me');
    assert.equal(meBefore.status, 200);
    assert.equal(meBefore.body.email_verified, false, 'opening the link did not verify the address');
    assert.deepEqual(
      server.responses().slice(from).filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.path}`),
      [],
      'opening the page sent nothing but GETs',
    );
    await assertNoCspViolation(page, csp, '/verify-email on load');

    // Act: press the button.
    const confirmed = await press(page, server.base, '/verify-email/confirm');

    // Assert: confirmed in the page and in the account.
    assert.equal(confirmed.status(), 200); // (its body, left unread by the page, is not readable)
    assert.equal(await statusText(page), VERIFY_DONE);
    const formShownWhenDone = await page.locator('form').isVisible();
    assert.ok(await page.locator('#submit').isDisabled());
    const meAfter = await api(server.base, bearer, 'GET', '/users/me');
    assert.equal(meAfter.body.email_verified, true, 'the button verified the address');
    assert.equal(meAfter.body.email, 'bob@example.com');
    await assertNoCspViolation(page, csp, '/verify-email after the button');

    // Act + Assert: the link is single-use; the page says so.
    await page.goto(link);
    const spent = await press(page, server.base, '/verify-email/confirm');
    assert.equal(spent.status(), 400);
    assert.equal(await statusText(page), 'Invalid or expired token');
    assert.deepEqual(blocked, []);
    assert.equal(formShownWhenDone, false, HIDDEN_FORM);
  } finally {
    await context.close();
  }
});

test('a page on another origin cannot submit the reset form without the page\'s CSRF token', { timeout: 120_000 }, async (t) => {
  // Its own server: the forged posts count against POST /password-reset/confirm's 10/minute per IP.
  const srv = await startServer({ users: ['carol'] });
  let attacker;
  const { context, blocked } = await closedContext(browser);
  try {
    // Arrange: carol's reset link (its token is what the attacker holds), the victim's browser
    // with the real reset page open (so it has the page's CSRF cookie), the attacker's own valid
    // CSRF token (minted for another cookie), and the victim page's token as if it had leaked.
    await setEmail(srv, 'carol', 'carol@example.com');
    const { link, token } = await resetLink(srv, 'carol@example.com');
    const attackerPassword = strongPassword();
    const attackerCsrf = (await (await fetch(`${srv.base}/csrftoken/`)).json()).csrf_token;
    const victim = await context.newPage();
    assertPageHeaders(await victim.goto(link), '/password-reset');
    const leakedCsrf = await victim.locator('input[name=csrf_token]').getAttribute('value');

    const target = `${srv.base}/password-reset/confirm`;
    const submit = '<script>document.forms[0].submit()</script>';
    const fields = (csrf) => `
      <input type="hidden" name="token" value="${token}">
      <input type="hidden" name="new_password" value="${attackerPassword}">
      ${csrf === undefined ? '' : `<input type="hidden" name="csrf_token" value="${csrf}">`}`;
    const form = (csrf, extra = '') => `<!doctype html>${extra}<title>win a prize</title>
      <form method="POST" action="${target}">${fields(csrf)}</form>${submit}`;
    attacker = await startSiteServer({
      '/no-token': () => form(undefined),
      '/attacker-token': () => form(attackerCsrf),
      '/leaked-token': () => form(leakedCsrf),
      // `Origin: null`, no Referer.
      '/leaked-token-no-referrer': () => form(leakedCsrf, '<meta name="referrer" content="no-referrer">'),
      // JSON over text/plain: {"token":"…","new_password":"…","csrf_token":"="}
      '/text-plain': () => `<!doctype html><title>win a prize</title>
        <form method="POST" enctype="text/plain" action="${target}">
          <input type="hidden" name='{"token":"${token}","new_password":"${attackerPassword}","csrf_token":"' value='"}'>
        </form>${submit}`,
      '/multipart': () => `<!doctype html><title>win a prize</title>
        <form method="POST" enctype="multipart/form-data" action="${target}">${fields(undefined)}</form>${submit}`,
    });
    const sameSite = `http://127.0.0.1:${attacker.port}`; // same-site: the Lax cookie goes along
    const crossSite = `http://localhost:${attacker.port}`; // cross-site: it does not
    const attacks = [
      [sameSite, '/no-token', [403]],
      [sameSite, '/attacker-token', [403]],
      [sameSite, '/leaked-token', [403]], // cookie and token match: only the Origin check stops it
      [sameSite, '/leaked-token-no-referrer', [403]],
      [sameSite, '/text-plain', [415]],
      [sameSite, '/multipart', [415]],
      [crossSite, '/no-token', [403]],
      [crossSite, '/leaked-token', [403]],
    ];
    const page = await context.newPage();
    const report = [];
    for (const [origin, path, expected] of attacks) {
      // Act: the victim visits the attacker's page, which auto-submits its form.
      const from = srv.responses().length;
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url() === target && r.request().method() === 'POST', { timeout: 10_000 }),
        page.goto(`${origin}${path}`),
      ]);
      const headers = await response.request().allHeaders();
      const status = response.status();
      report.push({
        attack: `${origin}${path}`, status,
        cookieSent: /(^|;\s*)csrftoken=/.test(headers.cookie ?? ''),
        origin: headers.origin, contentType: headers['content-type']?.split(';')[0],
      });

      // Assert: refused, as the server logged it too; the password is unchanged.
      assert.ok(expected.includes(status), `${origin}${path}: answered ${status}`);
      await page.waitForURL(target);
      if (status === 403) assert.match(await page.locator('body').innerText(), new RegExp(REFUSAL));
      let logged = [];
      for (let waited = 0; waited < 2_000 && logged.length === 0; waited += 50) {
        logged = srv.responses().slice(from).filter((r) => r.method === 'POST' && r.path === '/password-reset/confirm');
        if (logged.length === 0) await sleep(50);
      }
      assert.deepEqual(logged.map((r) => r.status), [status], `${origin}${path}: the server answered once`);
      assert.equal(await tokenStatus(srv.base, 'carol', attackerPassword), 401, `${origin}${path}: the password was not set`);
    }
    t.diagnostic(`cross-origin reset attempts: ${JSON.stringify(report)}`);
    // The same-site forgeries did carry the victim page's cookie (so the CSRF check, not the
    // browser, refused them), and every form post announced its origin.
    for (const r of report.filter((x) => x.attack.startsWith(sameSite))) {
      assert.ok(r.cookieSent, `${r.attack}: the same-site post carried the CSRF cookie`);
    }
    assert.ok(report.filter((r) => r.attack.startsWith(crossSite)).every((r) => !r.cookieSent), 'the Lax cookie stays home cross-site');
    assert.equal(await tokenStatus(srv.base, 'carol', srv.passwords.carol), 200, 'the old password still works');

    // Act: the victim uses the real page, still open, with the same link's token.
    await victim.locator('#new_password').fill(strongPassword());
    const real = await press(victim, srv.base, '/password-reset/confirm');

    // Assert: the refused posts neither spent the link's token nor the page's CSRF cookie, so
    // they were refused for their forgery alone.
    assert.equal(real.status(), 204);
    assert.ok((await statusText(victim)).startsWith(RESET_DONE));
    assert.equal(await tokenStatus(srv.base, 'carol', srv.passwords.carol), 401);
    assert.deepEqual(blocked, [], 'no request left the loopback interface');
  } finally {
    await context.close();
    await attacker?.close();
    await srv.stop();
  }
});
