// The interactive docs in a real browser with the network closed: /docs/ loads everything from
// this server, the OAuth2 password "Authorize" flow gets a token from /token, and "Try it out" →
// "Execute" on GET /items/ lists the user's items — all under the docs CSP (scripts and styles
// from this server only, no 'unsafe-inline') without a single CSP violation.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { api, bearerToken, closedContext, launchBrowser, parseCsp, startServer } from './helpers.mjs';

let server;
let browser;

before(async () => {
  server = await startServer({ users: ['docsuser', 'otheruser'] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('/docs/ works with the network closed: Authorize (OAuth2 password) then Try it out on GET /items/', { timeout: 90_000 }, async (t) => {
  const itemName = `docs-item-${randomBytes(6).toString('hex')}`;
  const token = await bearerToken(server.base, 'docsuser', server.passwords.docsuser);
  assert.equal((await api(server.base, token, 'POST', '/items/', { name: itemName, price: 3, tax: 0.5 })).status, 201);
  // Someone else's item must not show up.
  const otherToken = await bearerToken(server.base, 'otheruser', server.passwords.otheruser);
  const otherName = `not-yours-${randomBytes(6).toString('hex')}`;
  assert.equal((await api(server.base, otherToken, 'POST', '/items/', { name: otherName, price: 1 })).status, 201);

  const { context, blocked, requests } = await closedContext(browser);
  try {
    const page = await context.newPage();
    // Every CSP violation of the whole flow: the page's `securitypolicyviolation` events (set up
    // before any of its scripts runs) and the browser's console reports of them.
    await page.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__cspViolations.push({
          violatedDirective: e.violatedDirective,
          effectiveDirective: e.effectiveDirective,
          blockedURI: e.blockedURI,
          source: `${e.sourceFile}:${e.lineNumber}:${e.columnNumber}`,
          sample: e.sample,
          disposition: e.disposition,
        });
      });
    });
    const consoleErrors = [];
    const cspConsole = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
      if (/Content.Security.Policy/i.test(m.text())) cspConsole.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));

    const response = await page.goto(`${server.base}/docs/`);
    assert.equal(response.status(), 200);
    const csp = parseCsp(response.headers()['content-security-policy']);
    assert.deepEqual(csp['style-src'], ["'self'"], 'the page loaded under a style-src of self only');
    // Swagger UI rendered the document (title and the operations).
    await page.locator('.swagger-ui .info .title').waitFor({ timeout: 20_000 });
    assert.match(await page.locator('.swagger-ui .info .title').innerText(), /Bulwark/);
    const listItems = page.locator('.opblock.opblock-get')
      .filter({ has: page.locator('.opblock-summary-path', { hasText: /^\/items\/$/ }) });
    await listItems.first().waitFor();
    assert.equal(await listItems.count(), 1, 'one GET /items/ operation');

    // Authorize: the OAuth2 password flow against /token.
    // (Swagger UI's buttons carry aria-labels such as "Apply credentials": match their text.)
    await page.locator('.auth-wrapper button', { hasText: 'Authorize' }).first().click();
    const username = page.locator('#oauth_username');
    await username.waitFor();
    await username.fill('docsuser');
    await page.locator('#oauth_password').fill(server.passwords.docsuser);
    const oauthBox = page.locator('.auth-container', { hasText: 'OAuth2PasswordBearer' });
    const [tokenResponse] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${server.base}/token` && r.request().method() === 'POST'),
      oauthBox.locator('button', { hasText: /^Authorize$/ }).click(),
    ]);
    assert.equal(tokenResponse.status(), 200, `POST /token from Swagger UI: ${await tokenResponse.text()}`);
    const tokenBody = await tokenResponse.json();
    assert.equal(tokenBody.token_type, 'bearer');
    // Swagger UI shows the flow as authorized (a Logout button) — then close the dialog.
    await oauthBox.locator('button', { hasText: /^Logout$/ }).waitFor();
    await page.locator('.modal-ux .btn-done, .modal-ux button.close-modal').first().click();
    await page.locator('.modal-ux').waitFor({ state: 'detached' });

    // Try it out → Execute on GET /items/.
    const op = listItems.first();
    await op.locator('.opblock-summary').first().click();
    const tryItOut = op.locator('button', { hasText: /^Try it out $|^Try it out$/ });
    if (await tryItOut.isVisible().catch(() => false)) await tryItOut.click();
    const execute = op.locator('button', { hasText: /^Execute$/ });
    await execute.waitFor();
    const [itemsResponse] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/items/' && r.request().method() === 'GET'),
      execute.click(),
    ]);
    assert.equal(itemsResponse.status(), 200);
    const sent = await itemsResponse.request().allHeaders();
    assert.equal(sent.authorization, `Bearer ${tokenBody.access_token}`, 'Execute sent the token from Authorize');
    const shown = op.locator('.responses-wrapper .live-responses-table .response-col_description .highlight-code, .responses-wrapper .live-responses-table .microlight').first();
    await shown.waitFor();
    const shownText = await shown.innerText();
    assert.ok(shownText.includes(itemName), `the response shown lists the item: ${shownText.slice(0, 500)}`);
    assert.ok(!shownText.includes(otherName), 'and not another user\'s item');
    assert.match(await op.locator('.live-responses-table .response .response-col_status').first().innerText(), /200/);

    // More of Swagger UI's rendering under the CSP: the ItemOut schema, fully expanded.
    const itemOut = page.locator('section.models article.json-schema-2020-12')
      .filter({ has: page.locator('.json-schema-2020-12__title', { hasText: /^ItemOut$/ }) }).first();
    await itemOut.locator('.json-schema-2020-12-expand-deep-button').click();
    await itemOut.getByText('price_with_tax', { exact: true }).first().waitFor();
    // Violation events are dispatched asynchronously: let them arrive.
    await page.waitForTimeout(500);

    // Everything came from this server; nothing tried to leave; the CSP blocked nothing.
    const violations = await page.evaluate(() => window.__cspViolations);
    t.diagnostic(`docs requests: ${[...new Set(requests.map((r) => new URL(r.url).pathname))].join(' ')}`);
    if (consoleErrors.length) t.diagnostic(`console errors: ${JSON.stringify(consoleErrors)}`);
    assert.deepEqual(blocked, [], 'no request left the loopback interface');
    for (const r of requests) assert.equal(new URL(r.url).origin, server.base, `request to ${r.url}`);
    assert.ok(Array.isArray(violations), 'the violation listener was installed');
    assert.deepEqual(violations, [], 'the docs CSP blocked nothing Swagger UI does');
    assert.deepEqual(cspConsole, [], 'the console reported no CSP violation');
    // No <style> element at all (the CSP would block it: Swagger UI's own topbar logo is an
    // inline SVG with one), and the topbar shows our logo image in its place.
    assert.equal(await page.locator('style').count(), 0, 'no <style> element in the page');
    const logo = page.locator('.swagger-ui .topbar img');
    assert.equal(await logo.count(), 1, 'the topbar logo is an image');
    assert.ok(await logo.evaluate((img) => img.complete && img.naturalWidth > 0), 'the topbar logo loaded');
  } finally {
    await context.close();
  }
});

test('/docs/ and /openapi.json: own-origin scripts, the docs CSP, and the security schemes', { timeout: 30_000 }, async () => {
  const docs = await fetch(`${server.base}/docs/`);
  assert.equal(docs.status, 200);
  const html = await docs.text();
  // No CDN: every script and stylesheet is a relative URL on this server.
  for (const [, url] of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
    assert.ok(!/^(https?:)?\/\//.test(url), `docs page loads ${url} from elsewhere`);
  }
  const csp = docs.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'(;|$)/, 'docs: scripts from self only');
  assert.doesNotMatch(csp, /'unsafe-(inline|eval|hashes)'/, `docs: no unsafe source: ${csp}`);
  const directives = parseCsp(csp);
  assert.deepEqual(directives['script-src'], ["'self'"], `docs: script-src 'self' only: ${csp}`);
  assert.deepEqual(directives['style-src'], ["'self'"], `docs: style-src 'self' only: ${csp}`);
  // No per-element or per-attribute escape hatches either.
  for (const name of ['script-src-elem', 'script-src-attr', 'style-src-elem', 'style-src-attr']) {
    assert.equal(directives[name], undefined, `docs: no ${name}: ${csp}`);
  }
  // The page itself has no inline script, inline <style> or style attribute.
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'docs: no inline script');
  assert.doesNotMatch(html, /<style[\s>]/i, 'docs: no inline <style>');
  assert.doesNotMatch(html, /\sstyle=/i, 'docs: no style attribute');
  assert.doesNotMatch(html, /\son[a-z]+=/i, 'docs: no inline event handler');
  const spec = await (await fetch(`${server.base}/openapi.json`)).json();
  assert.match(spec.openapi, /^3\.1/);
  const schemes = spec.components.securitySchemes;
  assert.equal(schemes.OAuth2PasswordBearer.flows.password.tokenUrl, '/token');
  assert.equal(schemes.HTTPBearer.scheme, 'bearer');
  assert.equal(schemes.session.in, 'cookie');
});
