// Stored XSS for real: every payload of xss-payloads.mjs is stored through the API as an item's
// `description` and as another item's `name`, and each item's /items/{id}/view page is opened in
// Chromium with the owner's session cookie. No payload may run. Watched:
//   - `page.on('dialog')` (alert/confirm/prompt from any frame),
//   - `window.__xss`, which the payloads set,
//   - any request for a URL with `__xss_beacon`, any request that is not the page or its
//     stylesheet, any attempt to leave the loopback interface,
//   - CSP violation events (something active reached the DOM and only the CSP stopped it),
//   - the DOM: the description holds only the contract's allowlist (`a href` only http, https,
//     mailto, with rel="noopener noreferrer"), no active element or `on*` attribute anywhere,
//     and the name shows verbatim as text.
// Every link and button in the description is clicked too. The whole run is done twice: with the
// server's CSP, and with the CSP bypassed, so that the sanitizer and the template's escaping are
// proven on their own (the CSP is the second wall, not the first).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  api, bearerToken, closedContext, launchBrowser, loginWithForm, sleep, startServer,
} from './helpers.mjs';
import { PAYLOADS } from './xss-payloads.mjs';

let server;
let browser;
let token;
const items = []; // {index, field, id, name, payload}

// The name is plain text without control characters: those payloads go in with spaces instead.
// eslint-disable-next-line no-control-regex
const asName = (payload) => payload.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');

before(async () => {
  assert.ok(PAYLOADS.length >= 60, `at least 60 payloads (${PAYLOADS.length})`);
  assert.equal(new Set(PAYLOADS).size, PAYLOADS.length, 'payloads are distinct');
  server = await startServer({ users: ['xssuser'] });
  token = await bearerToken(server.base, 'xssuser', server.passwords.xssuser);
  for (const [index, payload] of PAYLOADS.entries()) {
    assert.ok(asName(payload).length <= 200, `payload ${index} fits in a name`);
    const asDescription = await api(server.base, token, 'POST', '/items/', {
      name: `xss-description-${index}`, description: payload, price: 1,
    });
    assert.equal(asDescription.status, 201, `payload ${index} as description: ${JSON.stringify(asDescription.body)}`);
    items.push({ index, field: 'description', id: asDescription.body.id, name: `xss-description-${index}`, payload });
    const name = asName(payload);
    const asNameItem = await api(server.base, token, 'POST', '/items/', { name, price: 1 });
    assert.equal(asNameItem.status, 201, `payload ${index} as name: ${JSON.stringify(asNameItem.body)}`);
    assert.equal(asNameItem.body.name, name, 'the name is stored as given');
    items.push({ index, field: 'name', id: asNameItem.body.id, name, payload });
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// Runs in the page: what a successful payload would have left behind.
function inspectPage() {
  const ALLOWED = new Set(['P', 'BR', 'B', 'I', 'EM', 'STRONG', 'CODE', 'PRE', 'BLOCKQUOTE', 'UL', 'OL', 'LI', 'A']);
  const problems = [];
  const description = document.getElementById('description');
  if (!description) problems.push('no #description element: the page structure was broken');
  for (const el of description ? description.querySelectorAll('*') : []) {
    if (!ALLOWED.has(el.tagName)) problems.push(`tag <${el.tagName.toLowerCase()}> in the description`);
    for (const attr of el.attributes) {
      if (!(el.tagName === 'A' && (attr.name === 'href' || attr.name === 'rel'))) {
        problems.push(`attribute ${el.tagName.toLowerCase()}[${attr.name}] in the description`);
      }
    }
    if (el.tagName === 'A' && el.hasAttribute('href')) {
      let protocol = 'unparsable:';
      try { protocol = new URL(el.getAttribute('href'), location.href).protocol; } catch { /* bad */ }
      if (!['http:', 'https:', 'mailto:'].includes(protocol)) problems.push(`link to ${el.getAttribute('href')}`);
      const rel = (el.getAttribute('rel') || '').split(/\s+/);
      if (!rel.includes('noopener') || !rel.includes('noreferrer')) problems.push(`link rel="${el.getAttribute('rel')}"`);
    }
  }
  const active = document.querySelectorAll([
    'script', 'iframe', 'frame', 'frameset', 'object', 'embed', 'img', 'svg', 'math', 'style',
    'base', 'form', 'input', 'button', 'select', 'textarea', 'video', 'audio', 'source', 'template',
    'noscript', 'meta[http-equiv]', 'link:not([rel="stylesheet"][href="/static/bulwark.css"])',
  ].join(','));
  for (const el of active) problems.push(`active element <${el.tagName.toLowerCase()}> in the page`);
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (/^on/i.test(attr.name) || /^(style|srcdoc|formaction|xlink:href)$/i.test(attr.name)) {
        problems.push(`attribute ${el.tagName.toLowerCase()}[${attr.name}] in the page`);
      }
    }
  }
  const name = document.getElementById('name');
  // The description's links and buttons are clicked next; links with a safe scheme (http,
  // https, mailto, checked above) are not followed, so the page stays put; anything else would
  // be followed and run.
  const clickable = description ? description.querySelectorAll('a, button, [onclick]').length : 0;
  if (clickable > 0) {
    document.addEventListener('click', (e) => {
      const a = e.target.closest && e.target.closest('a[href]');
      if (a && ['http:', 'https:', 'mailto:'].includes(a.protocol)) e.preventDefault();
    }, true);
  }
  return {
    clickable,
    xss: window.__xss,
    csp: window.__cspViolations ?? [],
    problems,
    name: name ? name.textContent : null,
    title: document.title,
    location: location.href,
  };
}

async function viewEveryItem(t, { bypassCSP }) {
  const { context, blocked, requests } = await closedContext(browser, { bypassCSP });
  // Registered before any page script: CSP violations are recorded for the check above.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const failures = [];
  let clicks = 0;
  try {
    const page = await context.newPage();
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });

    // Positive control: the detectors do see a payload that runs.
    await page.setContent('<img src="x:" onerror="window.__xss=1;alert(1)">');
    await page.waitForFunction(() => window.__xss === 1);
    await sleep(50);
    assert.equal(dialogs.length, 1, 'the dialog detector works');
    dialogs.length = 0;

    assert.equal((await loginWithForm(page, server.base, 'xssuser', server.passwords.xssuser)).status(), 200);
    const allowedLoads = new Set([`${server.base}/static/bulwark.css`, `${server.base}/favicon.ico`]);

    for (const item of items) {
      const label = `payload ${item.index} as ${item.field} (item ${item.id}): ${JSON.stringify(item.payload)}`;
      const firstRequest = requests.length;
      const firstDialog = dialogs.length;
      const firstBlocked = blocked.length;
      const url = `${server.base}/items/${item.id}/view`;
      const response = await page.goto(url);
      if (response.status() !== 200) {
        failures.push(`${label}: /view answered ${response.status()}`);
        continue;
      }
      await sleep(30); // handlers fired by load/error/focus/animation events
      const seen = await page.evaluate(inspectPage);
      if (seen.xss !== undefined) failures.push(`${label}: window.__xss was set`);
      if (seen.csp.length) failures.push(`${label}: CSP violations ${JSON.stringify(seen.csp)}`);
      for (const p of seen.problems) failures.push(`${label}: ${p}`);
      if (seen.location !== url) failures.push(`${label}: the page moved to ${seen.location}`);
      const expectedName = item.name;
      if (seen.name !== expectedName) failures.push(`${label}: name shown as ${JSON.stringify(seen.name)}`);
      const squash = (s) => s.replace(/[\t\n\f\r ]+/g, ' ').trim();
      if (seen.title !== squash(`${expectedName} · Bulwark`)) failures.push(`${label}: title ${JSON.stringify(seen.title)}`);

      // Click every link and button of the description (see inspectPage).
      const clickable = page.locator('#description a, #description button, #description [onclick]');
      const count = seen.clickable;
      for (let i = 0; i < count; i += 1) {
        clicks += 1;
        const target = clickable.nth(i);
        await target.click({ force: true, timeout: 2_000 })
          .catch(() => target.evaluate((el) => el.click()).catch(() => {}));
      }
      if (count > 0) {
        await sleep(30);
        const afterClicks = await page.evaluate(() => ({ xss: window.__xss, csp: window.__cspViolations ?? [], location: location.href }))
          .catch((e) => ({ error: String(e) }));
        if (afterClicks.error) failures.push(`${label}: a click navigated away (${afterClicks.error})`);
        else {
          if (afterClicks.xss !== undefined) failures.push(`${label}: a click set window.__xss`);
          if (afterClicks.csp.length > seen.csp.length) failures.push(`${label}: a click caused CSP violations ${JSON.stringify(afterClicks.csp)}`);
          if (afterClicks.location !== url) failures.push(`${label}: a click moved the page to ${afterClicks.location}`);
        }
      }

      if (dialogs.length > firstDialog) failures.push(`${label}: dialog ${JSON.stringify(dialogs.slice(firstDialog))}`);
      if (blocked.length > firstBlocked) failures.push(`${label}: tried to leave loopback: ${blocked.slice(firstBlocked)}`);
      for (const r of requests.slice(firstRequest)) {
        if (r.url.includes('__xss_beacon')) failures.push(`${label}: beacon loaded ${r.url}`);
        else if (r.url !== url && !allowedLoads.has(r.url)) failures.push(`${label}: unexpected load ${r.method} ${r.url}`);
      }
    }
    t.diagnostic(`${items.length} item pages (${PAYLOADS.length} payloads × description and name), ${clicks} clicks, bypassCSP=${bypassCSP}`);
    assert.deepEqual(failures, [], `payloads got through:\n${failures.join('\n')}`);
    assert.deepEqual(dialogs, []);
  } finally {
    await context.close();
  }
}

test('no stored payload runs on /items/{id}/view (with the server\'s CSP)', { timeout: 150_000 }, async (t) => {
  await viewEveryItem(t, { bypassCSP: false });
});

test('no stored payload runs on /items/{id}/view even with the CSP bypassed (sanitizer and escaping alone)', { timeout: 150_000 }, async (t) => {
  await viewEveryItem(t, { bypassCSP: true });
});

test('the stored description is the sanitized form, and the API never returns active HTML', { timeout: 30_000 }, async () => {
  for (const item of items.filter((i) => i.field === 'description')) {
    const r = await api(server.base, token, 'GET', `/items/${item.id}`);
    assert.equal(r.status, 200);
    const stored = r.body.description ?? '';
    assert.doesNotMatch(stored, /<(?!\/?(p|br|b|i|em|strong|code|pre|blockquote|ul|ol|li|a)[\s>/])/i,
      `payload ${item.index}: only allowlisted tags are stored: ${stored}`);
    assert.doesNotMatch(stored, /<[^>]*\son\w+\s*=/i, `payload ${item.index}: no event handler: ${stored}`);
    assert.doesNotMatch(stored, /href\s*=\s*"(?!https?:|mailto:)/i, `payload ${item.index}: only safe link schemes: ${stored}`);
  }
});
