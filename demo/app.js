// The edgestream demo page: a browser's own EventSource on /v1/stream, opened
// with a single-use stream ticket (the default) or with a development token in
// ?access_token=; a progress bar fed by `scan.progress` events, an event log
// with ids, and a publish form. Served only in development (DEV_MODE=1,
// loopback host).

const $ = (id) => document.getElementById(id);
const RELAY_EVENTS = ['stream-open', 'stream-reset', 'stream-error'];
const EVENT_TYPES = ['scan.progress', 'scan.completed', 'scan.failed', 'message'];
const MAX_ROWS = 500;
/** First delay of the page's own reconnects (ticket mode), doubled up to the maximum. */
const RETRY_MS = 500;
const MAX_RETRY_MS = 5000;

const page = {
  es: null,
  // Bumped by every Connect and Disconnect: callbacks of an earlier run stop.
  run: 0,
  active: false,
  opened: false,
  mode: 'ticket',
  target: null,
  lastId: '',
  attempt: 0,
  retryTimer: undefined,
  types: new Set(EVENT_TYPES),
  tokens: new Map(),
  connections: 0,
  tickets: 0,
  events: 0,
  channelEdited: false,
};

// ---- display

function setState(state) {
  const el = $('state');
  el.dataset.state = state;
  el.textContent = state;
  $('connect').disabled = state === 'connecting';
  $('disconnect').disabled = !page.active;
  $('auth').disabled = page.active;
}

function selectedMode() {
  return document.querySelector('input[name="auth"]:checked').value;
}

function showMode(mode) {
  for (const el of document.querySelectorAll('[data-mode]')) el.hidden = el.dataset.mode !== mode;
}

function showError(title, detail) {
  const el = $('error');
  el.replaceChildren();
  const strong = document.createElement('strong');
  strong.textContent = title;
  el.append(strong, document.createTextNode(detail ?? ''));
  el.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').replaceChildren();
}

function setProgress(pct) {
  const value = Math.max(0, Math.min(100, Math.round(pct)));
  $('bar').setAttribute('aria-valuenow', String(value));
  $('bar-fill').style.width = `${value}%`;
  $('pct').textContent = String(value);
  $('bar').toggleAttribute('data-complete', value === 100);
}

function addRow(id, type, data, kind) {
  const row = document.createElement('tr');
  if (kind) row.className = kind;
  row.dataset.event = type;
  if (id) row.dataset.id = id;
  for (const text of [id || '', type, data]) {
    const cell = document.createElement('td');
    cell.textContent = text;
    row.append(cell);
  }
  const log = $('log');
  log.prepend(row);
  while (log.rows.length > MAX_ROWS) log.deleteRow(-1);
  page.events += 1;
  $('log-count').textContent = String(page.events);
}

// ---- relay calls

class ProblemError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code ?? 'http_error';
  }
  get title() {
    return `${this.status} ${this.code}`;
  }
}

async function readJson(res) {
  try {
    return await res.json();
  } catch {
    return undefined;
  }
}

async function devToken(tenant, publish) {
  const key = `${tenant} ${publish}`;
  const cached = page.tokens.get(key);
  if (cached && cached.expires_at - 60 > Date.now() / 1000) return cached.token;
  const res = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ tenant, publish }),
  });
  const body = await readJson(res);
  if (!res.ok) throw new ProblemError(res.status, body);
  page.tokens.set(key, body);
  return body.token;
}

async function publish(event, data) {
  const tenant = $('tenant').value.trim();
  const channel = $('channel').value.trim();
  const token = await devToken(tenant, true);
  const res = await fetch('/v1/publish', {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, event, data }),
  });
  const body = await readJson(res);
  if (res.status !== 202) throw new ProblemError(res.status, body);
  return body.results[0];
}

/** Exchanges a dev token for a single-use stream ticket. */
async function issueTicket(tenant, channel) {
  const token = await devToken(tenant, false);
  const res = await fetch('/v1/tickets', {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channels: [channel] }),
  });
  const body = await readJson(res);
  if (res.status !== 201) throw new ProblemError(res.status, body);
  page.tickets += 1;
  $('tickets').textContent = String(page.tickets);
  return body.ticket;
}

/** A stream URL with a fresh credential: a new ticket, or the dev token. */
async function streamUrl() {
  const { tenant, channel } = page.target;
  const url = new URL('/v1/stream', location.origin);
  if (page.mode === 'ticket') {
    // Without `channel`, the stream opens the ticket's channels.
    url.searchParams.set('ticket', await issueTicket(tenant, channel));
    // A new EventSource sends no Last-Event-ID header: the cursor goes in the URL.
    if (page.lastId) url.searchParams.set('lastEventId', page.lastId);
  } else {
    url.searchParams.set('channel', channel);
    url.searchParams.set('access_token', await devToken(tenant, false));
  }
  return url;
}

/**
 * EventSource reports a refused stream only as an `error` event, without the
 * status. Ask the relay the same question with fetch: resolves if it would
 * open the stream now, throws its problem (or a network error) otherwise.
 */
async function probe(url) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5000);
  try {
    const res = await fetch(url, { signal: controller.signal, headers: { Accept: 'text/event-stream' } });
    if (!res.ok) throw new ProblemError(res.status, await readJson(res));
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

// ---- the stream

function listen(es, type) {
  es.addEventListener(type, (e) => {
    if (page.es === es) onEvent(type, e);
  });
}

function onEvent(type, e) {
  const relay = RELAY_EVENTS.includes(type);
  // `lastEventId` persists across events: only real events carry their own.
  const id = relay ? '' : e.lastEventId;
  if (id) {
    page.lastId = id;
    $('last-id').textContent = id;
  }
  addRow(id, type, e.data, relay ? 'relay' : '');
  let data;
  try {
    data = JSON.parse(e.data);
  } catch {
    data = undefined;
  }
  if (type === 'scan.progress' && typeof data?.pct === 'number') setProgress(data.pct);
  if (type === 'scan.completed') setProgress(100);
  if (type === 'stream-reset') setProgress(0);
  if (type === 'stream-error') {
    showError(`stream-error ${data?.code ?? ''}`.trim(), data?.message ?? '');
  }
}

function connect() {
  disconnect();
  clearError();
  page.target = { tenant: $('tenant').value.trim(), channel: $('channel').value.trim() };
  page.mode = selectedMode();
  page.lastId = '';
  page.attempt = 0;
  page.opened = false;
  page.active = true;
  open(page.run);
}

/** Opens an EventSource with a fresh credential, resuming from `page.lastId`. */
async function open(run) {
  setState(page.opened ? 'reconnecting' : 'connecting');
  let url;
  try {
    url = await streamUrl();
  } catch (e) {
    if (run === page.run) failOrRetry(run, e);
    return;
  }
  if (run !== page.run) return;
  const es = new EventSource(url);
  page.es = es;
  for (const type of [...RELAY_EVENTS, ...page.types]) listen(es, type);
  es.addEventListener('open', () => {
    if (page.es !== es) return;
    page.opened = true;
    page.attempt = 0;
    page.connections += 1;
    $('connections').textContent = String(page.connections);
    clearError();
    setState('open');
  });
  es.addEventListener('error', () => {
    if (page.es !== es) return;
    const retrying = es.readyState === EventSource.CONNECTING;
    if (retrying && page.mode === 'token') {
      // The browser reconnects by itself and sends Last-Event-ID.
      setState('reconnecting');
      return;
    }
    es.close();
    page.es = null;
    if (retrying) {
      // The browser would retry with the same URL, and so the spent ticket:
      // reconnect with a new one instead.
      retryLater(run);
    } else {
      // The relay refused the stream; EventSource will not try again.
      explainRefusal(run, url);
    }
  });
}

function retryLater(run) {
  const delay = Math.min(MAX_RETRY_MS, RETRY_MS * 2 ** page.attempt) * (0.8 + Math.random() * 0.4);
  page.attempt += 1;
  setState('reconnecting');
  clearTimeout(page.retryTimer);
  page.retryTimer = setTimeout(() => {
    if (run === page.run) open(run);
  }, delay);
}

async function explainRefusal(run, url) {
  setState(page.opened ? 'reconnecting' : 'connecting');
  try {
    // The failed attempt used its ticket up: ask with a new one.
    await probe(page.mode === 'ticket' ? await streamUrl() : url);
  } catch (e) {
    if (run === page.run) failOrRetry(run, e);
    return;
  }
  if (run !== page.run) return;
  // The relay would open the stream now.
  if (page.mode === 'ticket') retryLater(run);
  else fail('Connection failed', 'The stream closed unexpectedly; connect again.');
}

/** A refusal is shown; an outage after the stream was open is retried. */
function failOrRetry(run, e) {
  const refused = e instanceof ProblemError && e.status < 500;
  if (!refused && page.opened && page.mode === 'ticket') {
    retryLater(run);
  } else if (e instanceof ProblemError) {
    fail(e.title, e.message);
  } else {
    fail('Relay unreachable', 'The relay did not answer; check that it is running.');
  }
}

function fail(title, detail) {
  page.run += 1;
  clearTimeout(page.retryTimer);
  if (page.es) page.es.close();
  page.es = null;
  page.active = false;
  showError(title, detail);
  setState('failed');
}

function disconnect() {
  page.run += 1;
  clearTimeout(page.retryTimer);
  if (page.es) page.es.close();
  page.es = null;
  page.active = false;
  setState('idle');
}

// ---- forms

function defaultChannel(tenant) {
  return `scan-progress:${tenant}:demo`;
}

function init() {
  const params = new URLSearchParams(location.search);
  const tenant = params.get('tenant') || crypto.randomUUID();
  $('tenant').value = tenant;
  $('channel').value = params.get('channel') || defaultChannel(tenant);
  page.channelEdited = params.has('channel');

  $('tenant').addEventListener('input', () => {
    if (!page.channelEdited) $('channel').value = defaultChannel($('tenant').value.trim());
  });
  $('channel').addEventListener('input', () => {
    page.channelEdited = true;
  });
  $('new-tenant').addEventListener('click', () => {
    $('tenant').value = crypto.randomUUID();
    $('channel').value = defaultChannel($('tenant').value);
    page.channelEdited = false;
  });
  $('subscribe-form').addEventListener('submit', (e) => {
    e.preventDefault();
    connect();
  });
  $('disconnect').addEventListener('click', disconnect);
  $('auth').addEventListener('change', () => showMode(selectedMode()));
  showMode(selectedMode());

  const status = (text) => {
    $('publish-status').textContent = text;
  };
  $('publish-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const event = $('publish-event').value.trim();
    let data;
    try {
      data = JSON.parse($('publish-data').value);
    } catch {
      status('Data must be JSON.');
      return;
    }
    if (!page.types.has(event)) {
      page.types.add(event);
      if (page.es) listen(page.es, event);
    }
    try {
      const result = await publish(event, data);
      status(`Published ${event} as sequence ${result.id}${result.duplicate ? ' (duplicate)' : ''}.`);
    } catch (err) {
      status(`${err.title ?? 'Failed'}: ${err.message}`);
    }
  });
  $('run-scan').addEventListener('click', async () => {
    $('run-scan').disabled = true;
    try {
      for (let pct = 0; pct <= 100; pct += 10) {
        await publish('scan.progress', { pct });
        status(`Published scan.progress ${pct}%.`);
        await new Promise((r) => setTimeout(r, 300));
      }
    } catch (err) {
      status(`${err.title ?? 'Failed'}: ${err.message}`);
    } finally {
      $('run-scan').disabled = false;
    }
  });
  setState('idle');
}

init();
