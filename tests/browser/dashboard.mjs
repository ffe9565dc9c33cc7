// Browser test of the operator dashboard (GET /internal/dashboard).
//
// Starts the fake upstream (every call fails) and keel pointed at it, opens
// the dashboard in Debian's Chromium under the strict CSP it is meant to be
// served with, signs in (a wrong key first: the page must say 401 and ask
// again), sends sentiment jobs from Node until the `openai:sentiment` breaker
// opens, checks the page shows it open (listed first), that the header chip,
// the health card and both health endpoints say `degraded` with the breaker
// as the reason, that the trend charts (GET /internal/metrics/history) show
// the degraded answers and an open strip for the provider, clicks Reset and
// checks it shows closed and healthy. Saves target/dashboard.png (and
// target/dashboard-open.png while the breaker is open), then opens the page of
// a second keel with no INTERNAL_API_KEY (no sign-in card), then two keels
// sharing a real redis-server (the cluster card marks the instance that
// disagrees; target/dashboard-cluster.png). On failure saves
// target/dashboard-failure.png. Always kills both children. The last line
// printed is `1 passed, 0 failed` or `0 passed, 1 failed`.
//
// Env: KEEL_BIN, FAKE_LLM_BIN (default target/release/keel and
// target/release/fake_llm, relative to the repository root),
// CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default target/),
// DASHBOARD_HTML (a path: serve the page from this file instead of the copy
// compiled into keel, to iterate on the page without rebuilding).

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fromRoot = (p) => (isAbsolute(p) ? p : join(ROOT, p));
const KEEL_BIN = fromRoot(process.env.KEEL_BIN || 'target/release/keel');
const FAKE_LLM_BIN = fromRoot(process.env.FAKE_LLM_BIN || 'target/release/fake_llm');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT_DIR = fromRoot(process.env.SCREENSHOT_DIR || 'target');
const KEY = 'dash-test-key';
// The public key: with one set, /v1 is closed, so a revoked client key is a 401.
const PUBLIC_KEY = 'dash-public-key';
const PUBLIC_AUTH = { authorization: `Bearer ${PUBLIC_KEY}` };
const BREAKER = 'openai:sentiment';
const CSP =
  "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
  "img-src 'self' data:; connect-src 'self'";
const JOB = {
  text: 'The support team was friendly and solved my problem quickly.',
  operation: 'sentiment',
};
const OVERALL_TIMEOUT_MS = 120_000;

const children = [];
const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Spawns a child, keeping its last output lines for the failure report. */
function startChild(name, bin, args, env, cwd) {
  const child = spawn(bin, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const rec = { name, child, lines: [], exited: null };
  const keep = (chunk) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      rec.lines.push(line);
      if (rec.lines.length > 40) rec.lines.shift();
    }
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('error', (e) => { rec.exited = `spawn error: ${e.message}`; });
  child.on('exit', (code, signal) => { rec.exited ??= `exited (code ${code}, signal ${signal})`; });
  children.push(rec);
  return rec;
}

async function killChildren() {
  await Promise.all(children.map(async (rec) => {
    const c = rec.child;
    if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 3000);
    await Promise.race([gone, sleep(5000)]);
    clearTimeout(t);
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }));
}
// Last resort, synchronous: never leave a child behind.
process.on('exit', () => {
  for (const { child } of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try { child.kill('SIGKILL'); } catch { /* already gone */ }
    }
  }
});

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function waitFor(what, fn, timeoutMs, rec) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (rec?.exited) throw new Error(`${rec.name} ${rec.exited} while waiting for ${what}`);
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e.message;
    }
    await sleep(150);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last: ${last})` : ''}`);
}

async function main() {
  mkdirSync(OUT_DIR, { recursive: true });

  // 1. The fake upstream: every call answers 500.
  const fake = startChild('fake_llm', FAKE_LLM_BIN, ['--host', '127.0.0.1', '--port', '0', '--error-rate', '1.0'],
    { PATH: process.env.PATH ?? '/usr/bin:/bin' });
  const fakeUrl = await waitFor('fake_llm to listen', async () => {
    const m = fake.lines.join('\n').match(/fake_llm listening on (http:\/\/[0-9.:]+)/);
    return m?.[1];
  }, 15_000, fake);
  log(`fake_llm at ${fakeUrl} (error rate 1.0)`);

  // 2. keel, hermetic: minimal environment, its own empty working directory
  //    (so no .env is read).
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const workDir = mkdtempSync(join(tmpdir(), 'keel-dash-'));
  const keel = startChild('keel', KEEL_BIN, ['serve', '--host', '127.0.0.1', '--port', String(port)], {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: workDir,
    RUST_LOG: process.env.RUST_LOG ?? 'info',
    NO_COLOR: '1',
    ENVIRONMENT: 'development',
    OPENAI_BASE_URL: `${fakeUrl}/v1`,
    INTERNAL_API_KEY: KEY,
    API_KEY: PUBLIC_KEY,
    RESILIENCE_CUSTOM_CONFIG: '{"retry_attempts":1,"circuit_breaker_threshold":2,"recovery_timeout":300}',
  }, workDir);
  keel.child.on('exit', () => rmSync(workDir, { recursive: true, force: true }));
  await waitFor('keel /v1/health/ready', async () => (await fetch(`${base}/v1/health/ready`)).ok, 30_000, keel);
  log(`keel ready at ${base}`);

  // A second keel with no INTERNAL_API_KEY (development: open access), for
  // the check that the page then skips the sign-in card.
  const openPort = await freePort();
  const openBase = `http://127.0.0.1:${openPort}`;
  const openDir = mkdtempSync(join(tmpdir(), 'keel-dash-open-'));
  const keelOpen = startChild('keel (open access)', KEEL_BIN, ['serve', '--host', '127.0.0.1', '--port', String(openPort)], {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: openDir,
    RUST_LOG: 'warn',
    NO_COLOR: '1',
    ENVIRONMENT: 'development',
    RESILIENCE_PRESET: 'simple',
  }, openDir);
  keelOpen.child.on('exit', () => rmSync(openDir, { recursive: true, force: true }));
  await waitFor('open-access keel /v1/health/ready', async () => (await fetch(`${openBase}/v1/health/ready`)).ok, 30_000, keelOpen);
  log(`open-access keel ready at ${openBase}`);

  // 3. The browser, with the dashboard served under the strict CSP.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const problems = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, bypassCSP: false });
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) {
        problems.push(`CSP: ${m.text()}`);
      }
    });
    await context.route('**/internal/dashboard', async (route) => {
      const response = await route.fetch();
      const headers = { ...response.headers(), 'content-security-policy': CSP };
      if (process.env.DASHBOARD_HTML) {
        delete headers['content-length'];
        await route.fulfill({ response, headers, body: readFileSync(fromRoot(process.env.DASHBOARD_HTML), 'utf8') });
      } else {
        await route.fulfill({ response, headers });
      }
    });
    try {
      await runScenario(page, base);
      await runOpenAccess(await context.newPage(), openBase);
      await runCluster(await context.newPage());
      if (problems.length) throw new Error(problems.join('; '));
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: join(OUT_DIR, 'dashboard.png'), fullPage: true });
      log(`screenshot: ${join(OUT_DIR, 'dashboard.png')}`);
    } catch (e) {
      const shot = join(OUT_DIR, 'dashboard-failure.png');
      await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
      console.log(`failure screenshot: ${shot}`);
      if (problems.length) console.log(`browser problems: ${problems.join('; ')}`);
      throw e;
    }
  } finally {
    await browser.close().catch(() => {});
  }
}

async function runScenario(page, base) {
  const row = page.locator(`[data-breaker="${BREAKER}"]`);

  await page.goto(`${base}/internal/dashboard`);
  await page.locator('#key-input').waitFor({ state: 'visible', timeout: 10_000 });

  // A wrong key: clear message, and the form comes back.
  await page.fill('#key-input', 'not-the-key');
  await page.click('#key-submit');
  await page.locator('#login-msg', { hasText: '401' }).waitFor({ timeout: 10_000 });
  await page.locator('#key-input').waitFor({ state: 'visible', timeout: 5_000 });
  log('wrong key: 401 shown, key asked again');

  await page.fill('#key-input', KEY);
  await page.click('#key-submit');
  await row.locator('[data-state="closed"]').waitFor({ timeout: 10_000 });
  await page.locator('#health-chip[data-status="healthy"]').waitFor({ timeout: 10_000 });
  log(`signed in; ${BREAKER} shows closed, header says healthy`);

  // Fail sentiment jobs upstream until the breaker opens (the local fallback
  // still answers them). Bounded: at most 8 jobs.
  let opened = false;
  for (let i = 1; i <= 8 && !opened; i++) {
    const res = await fetch(`${base}/v1/text_processing/process`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...PUBLIC_AUTH },
      body: JSON.stringify(JOB),
    });
    const body = await res.json().catch(() => ({}));
    log(`job ${i}: HTTP ${res.status}, provider ${body?.metadata?.provider ?? '?'}, degraded ${body?.metadata?.degraded ?? '?'}`);
    const b = await (await fetch(`${base}/internal/resilience/circuit-breakers/${BREAKER}`, {
      headers: { authorization: `Bearer ${KEY}` },
    })).json();
    opened = b.state === 'open';
  }
  if (!opened) throw new Error(`${BREAKER} did not open after 8 failing jobs (API view)`);

  await row.locator('[data-state="open"]').waitFor({ timeout: 10_000 });
  log(`page shows ${BREAKER} open`);

  // One story: both health endpoints and every place on the page say
  // degraded, and the page says why.
  const keyed = { headers: { authorization: `Bearer ${KEY}` } };
  const publicStatus = (await (await fetch(`${base}/v1/health`)).json()).status;
  const operatorStatus = (await (await fetch(`${base}/internal/monitoring/health`, keyed)).json()).status;
  if (publicStatus !== 'degraded' || operatorStatus !== 'degraded') {
    throw new Error(`health disagrees with an open breaker: /v1/health ${publicStatus}, /internal/monitoring/health ${operatorStatus}`);
  }
  await page.locator('#health-chip[data-status="degraded"]').waitFor({ timeout: 10_000 });
  await page.locator('#health-status[data-status="degraded"]').waitFor({ timeout: 10_000 });
  await page.locator('#health-reasons li', { hasText: 'openai' }).first().waitFor({ timeout: 10_000 });
  log('header chip, health card and both health endpoints say degraded, with the breaker as the reason');

  // The trend charts fill from GET /internal/metrics/history (a sample every
  // 5 s): the fallback answers show as a degraded rate and the breaker strip
  // of the provider turns open.
  await page.locator('#chart-rates [data-series="degraded"]').first().waitFor({ timeout: 20_000 });
  await page.locator('[data-provider="openai"] rect[data-state="open"]').waitFor({ timeout: 20_000 });
  const reqPoints = Number(await page.locator('#chart-requests').getAttribute('data-points'));
  if (!(reqPoints >= 1)) throw new Error(`requests chart has no points (${reqPoints})`);
  log(`trend charts drawn (${reqPoints} request samples; degraded rate and an open strip for openai)`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(OUT_DIR, 'dashboard-open.png'), fullPage: true });
  const first = await page.locator('#breaker-rows tr').first().getAttribute('data-breaker');
  if (first !== BREAKER) throw new Error(`the open breaker is not listed first (first row: ${first})`);
  const headerText = await page.locator('#summary').innerText();
  if (!/\b1\s+of\s+\d+\s+breakers open/.test(headerText)) throw new Error(`header does not count the open breaker: ${headerText}`);

  await row.locator('[data-action="reset"]').click();
  await row.locator('[data-state="closed"]').waitFor({ timeout: 10_000 });
  log(`clicked Reset; page shows ${BREAKER} closed`);
  await page.locator('#toast', { hasText: 'reset applied' }).waitFor({ timeout: 5_000 });
  await page.locator('#health-chip[data-status="healthy"]').waitFor({ timeout: 10_000 });
  log('after Reset the header says healthy again');

  // Jobs card: pause consumption from the page, a submitted job waits and is
  // counted as queued; resume from the page and it runs.
  await page.locator('#jobs-pause').click();
  await page.locator('#jobs-depth[data-paused="true"]').waitFor({ timeout: 10_000 });
  const submitted = await fetch(`${base}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...PUBLIC_AUTH },
    body: JSON.stringify({ ...JOB, operation: 'key_points' }),
  });
  if (submitted.status !== 202) throw new Error(`job submission: HTTP ${submitted.status}`);
  const { job_id: jobId } = await submitted.json();
  await page.locator('#jobs-depth', { hasText: /^1\s+queued/ }).waitFor({ timeout: 10_000 });
  log(`jobs card: paused, job ${jobId} shown queued`);
  await page.locator('#jobs-resume').click();
  await page.locator('#jobs-depth[data-paused="false"]').waitFor({ timeout: 10_000 });
  const job = await (await fetch(`${base}/v1/jobs/${jobId}?wait=10`, { headers: PUBLIC_AUTH })).json();
  if (job.status !== 'succeeded') throw new Error(`job after resume: ${JSON.stringify(job)}`);
  await page.locator('#jobs-depth', { hasText: /^0\s+queued/ }).waitFor({ timeout: 10_000 });
  log('jobs card: resumed from the page, the job succeeded, queue back to 0');

  // Cluster card: no REDIS_URL here, so this instance alone, and it says why.
  await page.locator('#cluster-count[data-sharing="not_configured"]', { hasText: /^1\s+instance/ }).waitFor({ timeout: 10_000 });
  await page.locator('#cluster-instances li[data-disagrees="false"]', { hasText: 'this one' }).waitFor({ timeout: 10_000 });
  await page.locator('#cluster-sub', { hasText: 'no REDIS_URL' }).waitFor({ timeout: 10_000 });
  log('cluster card: one instance, not configured, no disagreement');

  await runKeys(page, base);
}

// API keys card: issue a client key from the page, use its secret (shown
// once), revoke it from the page, and find both actions in the audit card.
async function runKeys(page, base) {
  const card = page.locator('#card-keys');
  await card.locator('#key-rows li[data-kind="static_key"]').first().waitFor({ timeout: 10_000 });
  const statics = await card.locator('#key-rows li[data-kind="static_key"]').count();
  if (await card.locator('#key-rows li[data-kind="static_key"] [data-action="revoke"]').count()) {
    throw new Error('a static key offers Revoke');
  }
  const listed = await card.locator('#key-rows').innerText();
  if (listed.includes(KEY) || listed.includes(PUBLIC_KEY)) throw new Error('the key list shows a static secret');
  await page.fill('#key-name', 'browser-test');
  await page.fill('#key-limit', '100');
  await page.click('#key-create');
  const box = page.locator('#key-secret-box');
  await box.waitFor({ state: 'visible', timeout: 10_000 });
  if (!/shown once/i.test(await box.innerText())) throw new Error('the secret box does not say it is shown once');
  const secret = await page.locator('#key-secret').inputValue();
  const keyId = await box.getAttribute('data-key-id');
  if (!secret.startsWith('keel_')) throw new Error(`secret box: ${JSON.stringify(secret.slice(0, 8))}`);
  const row = card.locator(`#key-rows li[data-key-id="${keyId}"][data-kind="client_key"]`);
  await row.waitFor({ timeout: 10_000 });
  if ((await card.locator('#key-rows').innerText()).includes(secret)) throw new Error('the key list shows the secret');
  log(`keys card: ${statics} static keys (no Revoke), issued ${keyId}, secret shown once (${secret.slice(0, 5)}…)`);

  const call = () => fetch(`${base}/v1/text_processing/process`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
    body: JSON.stringify(JOB),
  });
  const before = await call();
  if (before.status !== 200) throw new Error(`call with the new key: HTTP ${before.status} ${await before.text()}`);
  log(`POST /v1/text_processing/process with the new key: HTTP ${before.status}`);

  page.once('dialog', (d) => d.accept());
  await page.locator('#key-secret-hide').click();
  await row.locator('[data-action="revoke"]').click();
  await card.locator(`#key-rows li[data-key-id="${keyId}"][data-revoked="true"]`).waitFor({ timeout: 10_000 });
  const after = await call();
  if (after.status !== 401) throw new Error(`call with the revoked key: HTTP ${after.status}`);
  log(`revoked from the page (confirm accepted); same call: HTTP ${after.status}`);

  const audit = page.locator('#audit-rows');
  await audit.locator(`li[data-action="key.revoked"][data-target="${keyId}"]`).waitFor({ timeout: 10_000 });
  await audit.locator(`li[data-action="key.created"][data-target="${keyId}"]`).waitFor({ timeout: 10_000 });
  const order = await audit.locator('li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-action')));
  if (order.indexOf('key.revoked') > order.indexOf('key.created')) throw new Error(`audit not newest first: ${order}`);
  log(`audit card, newest first: ${order.join(', ')}`);
}

// No INTERNAL_API_KEY (development): the page opens on the data, says the
// access is open, and offers no sign-out.
async function runOpenAccess(page, base) {
  await page.goto(`${base}/internal/dashboard`);
  await page.locator('#dash').waitFor({ state: 'visible', timeout: 10_000 });
  if (await page.locator('#login').isVisible()) throw new Error('open access: the sign-in card is shown');
  await page.locator('#summary', { hasText: 'open access' }).waitFor({ timeout: 5_000 });
  if (await page.locator('#forget-key').isVisible()) throw new Error('open access: a Sign out button is offered');
  log('open access: no sign-in card, header says open access');
}

// Three keels sharing one real redis-server: the cluster card on one lists
// all three, marks the instance whose breaker was changed with
// ?scope=instance as disagreeing with the majority, and clears the mark once
// a cluster-wide reset reaches it.
async function runCluster(page) {
  const redisPort = await freePort();
  const redisDir = mkdtempSync(join(tmpdir(), 'keel-dash-redis-'));
  const redis = startChild('redis-server', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'no', '--dir', redisDir], { PATH: process.env.PATH ?? '/usr/bin:/bin' });
  redis.child.on('exit', () => rmSync(redisDir, { recursive: true, force: true }));
  await waitFor('redis-server to listen', async () => redis.lines.some((l) => /Ready to accept connections/.test(l)), 15_000, redis);
  const keels = [];
  for (const id of ['dash-a', 'dash-b', 'dash-c']) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), `keel-${id}-`));
    const rec = startChild(`keel ${id}`, KEEL_BIN, ['serve', '--host', '127.0.0.1', '--port', String(port)], {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      RUST_LOG: 'warn',
      NO_COLOR: '1',
      ENVIRONMENT: 'development',
      INTERNAL_API_KEY: KEY,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      JOB_INSTANCE_ID: id,
    }, dir);
    rec.child.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    const url = `http://127.0.0.1:${port}`;
    await waitFor(`keel ${id} ready`, async () => (await fetch(`${url}/v1/health/ready`)).ok, 30_000, rec);
    keels.push(url);
  }
  const [a, b] = keels;
  const keyed = { headers: { authorization: `Bearer ${KEY}` } };
  await waitFor('all three instances in the cluster view', async () =>
    (await (await fetch(`${a}/internal/cluster`, keyed)).json()).instances?.length === 3, 10_000);
  const action = (base, act, scope) => fetch(
    `${base}/internal/resilience/circuit-breakers/local:sentiment/${act}${scope ? `?scope=${scope}` : ''}`,
    { method: 'POST', ...keyed });
  const forced = await action(b, 'force-open', 'instance');
  if ((await forced.json()).scope !== 'instance') throw new Error('force-open ?scope=instance did not answer scope instance');

  await page.goto(`${a}/internal/dashboard`);
  await page.locator('#key-input').waitFor({ state: 'visible', timeout: 10_000 });
  await page.fill('#key-input', KEY);
  await page.click('#key-submit');
  const card = page.locator('#card-cluster');
  await card.locator('#cluster-count[data-sharing="live"]', { hasText: /^3\s+instances/ }).waitFor({ timeout: 10_000 });
  await card.locator('li[data-instance="dash-b"][data-disagrees="true"]', { hasText: 'local:sentiment = forced_open (most: closed)' }).waitFor({ timeout: 10_000 });
  await card.locator('li[data-instance="dash-a"][data-disagrees="false"]', { hasText: 'this one' }).waitFor({ timeout: 10_000 });
  await card.locator('li[data-instance="dash-c"][data-disagrees="false"]').waitFor({ timeout: 10_000 });
  await card.locator('#cluster-sub', { hasText: '1 disagreement' }).waitFor({ timeout: 10_000 });
  log('cluster card: 3 instances live, dash-b marked as disagreeing (forced open on it alone)');
  await page.screenshot({ path: join(OUT_DIR, 'dashboard-cluster.png'), fullPage: true });

  const reset = await action(a, 'reset');
  if ((await reset.json()).scope !== 'cluster') throw new Error('a reset with Redis up did not answer scope cluster');
  await card.locator('li[data-instance="dash-b"][data-disagrees="false"]').waitFor({ timeout: 10_000 });
  await card.locator('#cluster-sub', { hasText: 'all agree' }).waitFor({ timeout: 10_000 });
  log('cluster card: after a cluster-wide reset on dash-a, all agree');
}

let failed = false;
const watchdog = setTimeout(() => {
  console.log(`FAIL: the whole test took more than ${OVERALL_TIMEOUT_MS / 1000} s`);
  failed = true;
  finish();
}, OVERALL_TIMEOUT_MS);

let finishing = false;
async function finish() {
  if (finishing) return;
  finishing = true;
  clearTimeout(watchdog);
  if (failed) {
    for (const rec of children) {
      console.log(`--- last output of ${rec.name}${rec.exited ? ` (${rec.exited})` : ''}:`);
      console.log(rec.lines.slice(-15).join('\n') || '(none)');
    }
  }
  await killChildren();
  // Everything goes to stdout, so this line is the last one a reader sees.
  process.stdout.write(failed ? '0 passed, 1 failed\n' : '1 passed, 0 failed\n', () => process.exit(failed ? 1 : 0));
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { console.log(`FAIL: interrupted (${sig})`); failed = true; finish(); });
}

main().then(
  () => log('PASS: dashboard shows the breaker opening and closes it with Reset'),
  (e) => { console.log(`FAIL: ${e?.stack ?? e}`); failed = true; },
).finally(finish);
