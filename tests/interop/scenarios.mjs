// Interoperability scenarios: the published `@agent-relay/sdk` RelayClient, unchanged, against a
// running agent-relay daemon.
//
// Usage:  RELAY_SOCKET=/path/to/relay.sock node scenarios.mjs
//
// The daemon must be fresh (no agents named Alice, Bob, Carol or Dave yet) and use the SQLite
// store. Each scenario prints `ok - <name>` or `not ok - <name>: <why>`; the exit status is 0
// only when every scenario passed. Every wait is bounded.

import assert from 'node:assert/strict';
import { RelayClient } from '@agent-relay/sdk';

const SOCKET = process.env.RELAY_SOCKET;
if (!SOCKET) {
  console.error('RELAY_SOCKET must name the daemon socket');
  process.exit(2);
}

// A hard stop for the whole script, whatever hangs.
const HARD_TIMEOUT_MS = Number(process.env.RELAY_INTEROP_TIMEOUT_MS ?? 90_000);
setTimeout(() => {
  console.log(`not ok - script: still running after ${HARD_TIMEOUT_MS} ms`);
  process.exit(3);
}, HARD_TIMEOUT_MS).unref();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `pred` every 10 ms; throws `what` (with the last state) after `ms`. */
async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await pred();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await sleep(10);
  }
}

/** Rejects when `promise` has not settled within `ms`. */
function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * A connected client that records everything it receives. `responders` are called for every
 * direct/broadcast delivery (after recording) so scenarios can answer requests.
 */
async function agent(name, extra = {}) {
  const client = new RelayClient({ socketPath: SOCKET, agentName: name, quiet: true, reconnect: false, ...extra });
  const rec = { name, client, messages: [], channel: [], responders: [], errors: [] };
  client.onMessage = (from, payload, id, meta, originalTo) => {
    rec.messages.push({ from, payload, id, meta, originalTo });
    for (const r of rec.responders) r({ from, payload, id, meta, originalTo });
  };
  client.onChannelMessage = (from, channel, body, envelope) => {
    rec.channel.push({ from, channel, body, envelope });
  };
  client.onError = (err) => rec.errors.push(err);
  await within(client.connect(), 5_000, `${name} connect`);
  assert.equal(client.state, 'READY', `${name} is READY after connect()`);
  return rec;
}

/** A query round trip: when it returns, the daemon has handled every frame `rec` sent before. */
async function roundTrip(rec) {
  await within(rec.client.getStatus(), 5_000, `${rec.name} STATUS round trip`);
}

const withBody = (rec, body) => rec.messages.filter((m) => m.payload?.body === body);
const withPrefix = (rec, prefix) =>
  rec.messages.filter((m) => typeof m.payload?.body === 'string' && m.payload.body.startsWith(prefix));
const names = (agents) => agents.map((a) => a.name);

let failures = 0;
async function check(name, fn) {
  const started = Date.now();
  try {
    await fn();
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    failures++;
    const why = (err && (err.stack || err.message)) || String(err);
    console.log(`not ok - ${name}: ${why.replace(/\n/g, '\n    ')}`);
  }
}

let alice, bob, carol;
try {
  alice = await agent('Alice');
  bob = await agent('Bob');
  carol = await agent('Carol');
  console.log('ok - connect Alice, Bob and Carol');
} catch (err) {
  console.log(`not ok - connect Alice, Bob and Carol: ${err.stack || err}`);
  process.exit(1);
}

// Bob answers blocking SENDs (sendAndWait) with a correlated ACK ...
bob.responders.push(({ payload, id, meta }) => {
  if (meta?.sync?.correlationId && payload.body === 'what is the answer?') {
    bob.client.sendAck({
      ack_id: id,
      seq: 0,
      correlationId: meta.sync.correlationId,
      response: true,
      responseData: { answer: 42, unit: 'none' },
    });
  }
});
// ... and request() calls with respond().
bob.responders.push(({ from, payload }) => {
  const cid = payload.data?._correlationId;
  if (cid && !payload.data._isResponse && payload.body === 'ping') {
    bob.client.respond(cid, from, 'pong', { x: 1 });
  }
});

await check('1 direct message keeps body, data and thread', async () => {
  const data = { n: 1, nested: { list: [1, 'two', { three: 3 }], flag: true, none: null }, text: 'héllo ✓' };
  assert.equal(alice.client.sendMessage('Bob', 'hello bob', 'message', data, 'thread-1'), true);
  const [m] = await waitFor(() => withBody(bob, 'hello bob').length && withBody(bob, 'hello bob'), 5_000, 'Bob to receive "hello bob"');
  assert.equal(m.from, 'Alice');
  assert.equal(m.payload.kind, 'message');
  assert.deepEqual(m.payload.data, data);
  assert.equal(m.payload.thread, 'thread-1');
  assert.equal(typeof m.id, 'string');
  assert.equal(m.originalTo, undefined, 'a direct message has no originalTo');
  await sleep(100);
  assert.equal(withBody(bob, 'hello bob').length, 1, 'delivered exactly once');
  assert.equal(withBody(carol, 'hello bob').length, 0, 'Carol does not see it');
});

await check('2 broadcast reaches everyone but the sender', async () => {
  assert.equal(alice.client.broadcast('hello everyone', 'message', { b: 1 }), true);
  await waitFor(
    () => withBody(bob, 'hello everyone').length && withBody(carol, 'hello everyone').length,
    5_000,
    'Bob and Carol to receive the broadcast',
  );
  for (const rec of [bob, carol]) {
    const [m] = withBody(rec, 'hello everyone');
    assert.equal(m.from, 'Alice', `${rec.name}: from`);
    assert.equal(m.originalTo, '*', `${rec.name}: originalTo`);
    assert.deepEqual(m.payload.data, { b: 1 }, `${rec.name}: data`);
  }
  await roundTrip(alice);
  await sleep(200);
  assert.equal(withBody(alice, 'hello everyone').length, 0, 'the sender does not get its own broadcast');
  assert.equal(withBody(bob, 'hello everyone').length, 1, 'Bob gets it once');
  assert.equal(withBody(carol, 'hello everyone').length, 1, 'Carol gets it once');
});

await check('3 sendAndWait resolves with the correlated ACK and its responseData', async () => {
  const ack = await within(
    alice.client.sendAndWait('Bob', 'what is the answer?', { timeoutMs: 5_000 }),
    7_000,
    'sendAndWait',
  );
  assert.equal(ack.response, true, `ACK payload: ${JSON.stringify(ack)}`);
  assert.deepEqual(ack.responseData, { answer: 42, unit: 'none' });
  assert.equal(typeof ack.correlationId, 'string');
  const [m] = withBody(bob, 'what is the answer?');
  assert.equal(ack.ack_id, m.id, 'the ACK names the delivery Bob answered');
  assert.equal(m.meta.sync.blocking, true);
});

await check('4 request/respond round trip', async () => {
  const res = await within(
    alice.client.request('Bob', 'ping', { timeout: 5_000, data: { q: 'status' }, thread: 'req-thread' }),
    7_000,
    'request',
  );
  assert.equal(res.from, 'Bob');
  assert.equal(res.body, 'pong');
  assert.equal(res.data.x, 1);
  assert.equal(res.data._isResponse, true);
  assert.equal(typeof res.correlationId, 'string');
  assert.equal(res.data._correlationId, res.correlationId);
  const [req] = withBody(bob, 'ping');
  assert.equal(req.payload.data.q, 'status', 'request data reaches the responder');
  assert.equal(req.payload.thread, 'req-thread');
  assert.equal(req.meta?.replyTo, res.correlationId, 'payload_meta.replyTo is preserved');
});

await check('5 channel join, message and inbox', async () => {
  for (const rec of [bob, carol, alice]) assert.equal(rec.client.joinChannel('#eng'), true);
  await Promise.all([bob, carol, alice].map(roundTrip));
  assert.equal(alice.client.sendChannelMessage('#eng', 'hi', { thread: 't1', mentions: ['Bob'], data: { c: 1 } }), true);
  await waitFor(
    () => bob.channel.some((m) => m.body === 'hi') && carol.channel.some((m) => m.body === 'hi'),
    5_000,
    () => `Bob and Carol to receive the channel message (Bob: ${JSON.stringify(bob.channel)}, Carol: ${JSON.stringify(carol.channel)})`,
  );
  for (const rec of [bob, carol]) {
    const m = rec.channel.find((x) => x.body === 'hi');
    assert.equal(m.from, 'Alice', `${rec.name}: from`);
    assert.equal(m.channel, '#eng', `${rec.name}: channel`);
    assert.equal(m.envelope.payload.thread, 't1', `${rec.name}: thread`);
    assert.deepEqual(m.envelope.payload.mentions, ['Bob'], `${rec.name}: mentions`);
    assert.deepEqual(m.envelope.payload.data, { c: 1 }, `${rec.name}: data`);
    // The SDK also reports channel messages through onMessage, with the channel as originalTo.
    const legacy = withBody(rec, 'hi');
    assert.equal(legacy.length, 1, `${rec.name}: onMessage sees the channel message once`);
    assert.equal(legacy[0].originalTo, '#eng');
  }
  const inbox = await within(bob.client.getInbox({ channel: '#eng', limit: 20 }), 5_000, 'getInbox #eng');
  const hit = inbox.find((m) => m.body === 'hi');
  assert.ok(hit, `Bob's #eng inbox contains the message: ${JSON.stringify(inbox)}`);
  assert.equal(hit.from, 'Alice');
  assert.equal(hit.channel, '#eng');
  assert.equal(hit.thread, 't1');
  assert.equal(typeof hit.id, 'string');
  assert.equal(typeof hit.timestamp, 'number');

  // Leaving stops delivery.
  assert.equal(carol.client.leaveChannel('#eng'), true);
  await roundTrip(carol);
  assert.equal(alice.client.sendChannelMessage('#eng', 'after carol left'), true);
  await waitFor(() => bob.channel.some((m) => m.body === 'after carol left'), 5_000, 'Bob to receive the second channel message');
  await roundTrip(alice);
  await sleep(200);
  assert.ok(!carol.channel.some((m) => m.body === 'after carol left'), 'Carol left #eng and gets nothing more');
});

await check('6 topic subscription filters broadcasts', async () => {
  assert.equal(carol.client.subscribe('deploys'), true);
  await roundTrip(carol);
  const sent = alice.client.send({
    v: 1,
    type: 'SEND',
    id: `topic-${Date.now()}`,
    ts: Date.now(),
    to: '*',
    topic: 'deploys',
    payload: { kind: 'message', body: 'deploy v1', data: { version: 1 } },
  });
  assert.equal(sent, true);
  const [m] = await waitFor(() => withBody(carol, 'deploy v1').length && withBody(carol, 'deploy v1'), 5_000, 'Carol to receive the topic broadcast');
  assert.equal(m.from, 'Alice');
  assert.equal(m.originalTo, '*');
  assert.deepEqual(m.payload.data, { version: 1 });
  await roundTrip(alice);
  await sleep(250);
  assert.equal(withBody(bob, 'deploy v1').length, 0, 'Bob is not subscribed to deploys');
  assert.equal(withBody(carol, 'deploy v1').length, 1, 'Carol gets it once');

  assert.equal(carol.client.unsubscribe('deploys'), true);
  await roundTrip(carol);
  alice.client.send({ v: 1, type: 'SEND', id: `topic2-${Date.now()}`, ts: Date.now(), to: '*', topic: 'deploys', payload: { kind: 'message', body: 'deploy v2' } });
  await roundTrip(alice);
  await sleep(250);
  assert.equal(withBody(carol, 'deploy v2').length, 0, 'nothing after unsubscribe');
});

let dave2;
await check('7 messages for an offline agent arrive in order on reconnect', async () => {
  const dave1 = await agent('Dave');
  dave1.client.disconnect();
  assert.equal(dave1.client.state, 'DISCONNECTED');
  await waitFor(
    async () => !names(await alice.client.listConnectedAgents()).includes('Dave'),
    5_000,
    'Dave to drop out of listConnectedAgents',
  );
  for (let i = 1; i <= 3; i++) {
    assert.equal(alice.client.sendMessage('Dave', `offline-${i}`, 'message', { i }, 'offline-thread'), true);
  }
  await roundTrip(alice);
  assert.equal(withPrefix(dave1, 'offline-').length, 0, 'the disconnected client got nothing');
  dave2 = await agent('Dave');
  await waitFor(() => withPrefix(dave2, 'offline-').length >= 3, 5_000, () => `3 queued messages (got ${JSON.stringify(withPrefix(dave2, 'offline-'))})`);
  await roundTrip(dave2);
  await sleep(100);
  const got = withPrefix(dave2, 'offline-');
  assert.deepEqual(got.map((m) => m.payload.body), ['offline-1', 'offline-2', 'offline-3']);
  for (const [k, m] of got.entries()) {
    assert.equal(m.from, 'Alice');
    assert.deepEqual(m.payload.data, { i: k + 1 });
    assert.equal(m.payload.thread, 'offline-thread');
  }
});

await check('8 burst of 500 direct messages: each exactly once, in order', async () => {
  const N = 500;
  for (let i = 0; i < N; i++) {
    assert.equal(alice.client.sendMessage('Bob', `burst-${i}`, 'message', { i }), true);
  }
  try {
    await waitFor(() => withPrefix(bob, 'burst-').length >= N, 20_000, 'all burst messages');
  } catch (err) {
    const seen = new Set(withPrefix(bob, 'burst-').map((m) => m.payload.body));
    const missing = [];
    for (let i = 0; i < N && missing.length < 20; i++) if (!seen.has(`burst-${i}`)) missing.push(i);
    throw new Error(`${err.message}: got ${seen.size}/${N}, first missing: ${missing.join(',')}`);
  }
  await roundTrip(alice);
  await sleep(200);
  const got = withPrefix(bob, 'burst-').map((m) => Number(m.payload.body.slice('burst-'.length)));
  assert.equal(got.length, N, `exactly ${N} deliveries (no duplicates)`);
  for (let i = 0; i < N; i++) {
    if (got[i] !== i) throw new Error(`out of order or duplicated at position ${i}: got ${got[i]} (neighbourhood ${got.slice(Math.max(0, i - 3), i + 4)})`);
  }
});

await check('9 query methods', async () => {
  // getStatus
  const status = await within(alice.client.getStatus(), 5_000, 'getStatus');
  assert.equal(typeof status.version, 'string', `status: ${JSON.stringify(status)}`);
  assert.ok(status.version.length > 0);
  assert.equal(typeof status.uptime, 'number');
  assert.ok(status.uptime >= 0);
  assert.equal(status.storage?.driver, 'sqlite', `storage: ${JSON.stringify(status.storage)}`);
  assert.equal(status.storage.persistent, true);
  assert.equal(status.storage.canWrite, true);

  // getInbox
  assert.equal(alice.client.sendMessage('Bob', 'inbox-probe', 'message', undefined, 'probe-thread'), true);
  await waitFor(() => withBody(bob, 'inbox-probe').length, 5_000, 'Bob to receive inbox-probe');
  const inbox = await within(bob.client.getInbox({ limit: 10 }), 5_000, 'getInbox');
  assert.ok(inbox.length > 0 && inbox.length <= 10, `limit respected: ${inbox.length}`);
  const probe = inbox.find((m) => m.body === 'inbox-probe');
  assert.ok(probe, `Bob's inbox has the probe: ${JSON.stringify(inbox.slice(0, 3))}`);
  assert.equal(probe.from, 'Alice');
  assert.equal(probe.thread, 'probe-thread');
  const fromAlice = await within(bob.client.getInbox({ from: 'Alice', limit: 5 }), 5_000, 'getInbox from');
  assert.ok(fromAlice.length > 0 && fromAlice.every((m) => m.from === 'Alice'), 'from filter');
  const fromCarol = await within(bob.client.getInbox({ from: 'Carol' }), 5_000, 'getInbox from Carol');
  assert.ok(!fromCarol.some((m) => m.body === 'inbox-probe'), 'from filter excludes other senders');
  const unread = await within(bob.client.getInbox({ unreadOnly: true }), 5_000, 'getInbox unreadOnly');
  assert.ok(Array.isArray(unread));

  // queryMessages
  const threaded = await within(
    alice.client.queryMessages({ from: 'Alice', to: 'Bob', thread: 'thread-1', limit: 10 }),
    5_000,
    'queryMessages thread',
  );
  assert.equal(threaded.length, 1, `thread filter: ${JSON.stringify(threaded)}`);
  assert.equal(threaded[0].body, 'hello bob');
  assert.equal(threaded[0].from, 'Alice');
  assert.equal(threaded[0].to, 'Bob');
  assert.equal(threaded[0].thread, 'thread-1');
  assert.equal(typeof threaded[0].timestamp, 'number');
  const asc = await within(alice.client.queryMessages({ from: 'Alice', to: 'Bob', limit: 5, order: 'asc' }), 5_000, 'queryMessages asc');
  assert.equal(asc.length, 5);
  assert.ok(asc.every((m) => m.from === 'Alice' && m.to === 'Bob'), 'from/to filters');
  assert.equal(asc[0].body, 'hello bob', `oldest Alice→Bob message first: ${asc.map((m) => m.body)}`);
  for (let i = 1; i < asc.length; i++) assert.ok(asc[i - 1].timestamp <= asc[i].timestamp, 'ascending timestamps');
  const desc = await within(alice.client.queryMessages({ from: 'Alice', to: 'Bob', limit: 5, order: 'desc' }), 5_000, 'queryMessages desc');
  assert.equal(desc.length, 5);
  assert.equal(desc[0].body, 'inbox-probe', `newest first: ${desc.map((m) => m.body)}`);
  for (let i = 1; i < desc.length; i++) assert.ok(desc[i - 1].timestamp >= desc[i].timestamp, 'descending timestamps');
  const since = await within(alice.client.queryMessages({ sinceTs: desc[0].timestamp - 1, from: 'Alice', to: 'Bob' }), 5_000, 'queryMessages sinceTs');
  assert.ok(since.some((m) => m.body === 'inbox-probe'), 'sinceTs keeps newer messages');
  assert.ok(!since.some((m) => m.body === 'hello bob'), 'sinceTs drops older messages');
  const toDave = await within(alice.client.queryMessages({ to: 'Dave', order: 'asc' }), 5_000, 'queryMessages to Dave');
  assert.deepEqual(toDave.map((m) => m.body).filter((b) => b.startsWith('offline-')), ['offline-1', 'offline-2', 'offline-3']);

  // listAgents
  const all = await within(alice.client.listAgents(), 5_000, 'listAgents');
  for (const n of ['Alice', 'Bob', 'Carol', 'Dave']) assert.ok(names(all).includes(n), `listAgents has ${n}: ${names(all)}`);

  // listConnectedAgents
  const connected = await within(alice.client.listConnectedAgents(), 5_000, 'listConnectedAgents');
  for (const n of ['Alice', 'Bob', 'Carol', 'Dave']) assert.ok(names(connected).includes(n), `connected has ${n}: ${names(connected)}`);
  dave2.client.disconnect();
  await waitFor(
    async () => !names(await alice.client.listConnectedAgents()).includes('Dave'),
    5_000,
    'Dave to leave listConnectedAgents after disconnect()',
  );
  const later = await alice.client.listConnectedAgents();
  for (const n of ['Alice', 'Bob', 'Carol']) assert.ok(names(later).includes(n), `still connected: ${n}`);

  // removeAgent
  const removed = await within(alice.client.removeAgent('Dave'), 5_000, 'removeAgent Dave');
  assert.equal(removed.success, true, `removeAgent Dave: ${JSON.stringify(removed)}`);
  assert.equal(removed.removed, true);
  assert.ok(!names(await alice.client.listAgents()).includes('Dave'), 'Dave is gone from listAgents');
  const unknown = await within(alice.client.removeAgent('NobodyByThisName'), 5_000, 'removeAgent unknown');
  assert.equal(unknown.removed, false, `removeAgent unknown: ${JSON.stringify(unknown)}`);

  // getHealth
  const health = await within(alice.client.getHealth(), 5_000, 'getHealth');
  assert.equal(typeof health.healthScore, 'number', `health: ${JSON.stringify(health)}`);
  assert.ok(health.healthScore >= 0 && health.healthScore <= 100);
  assert.equal(typeof health.summary, 'string');
  for (const k of ['issues', 'recommendations', 'crashes', 'alerts']) assert.ok(Array.isArray(health[k]), `health.${k} is an array`);
  assert.equal(typeof health.stats?.agentCount, 'number');

  // getMetrics
  const metrics = await within(alice.client.getMetrics(), 5_000, 'getMetrics');
  assert.ok(metrics.system?.heapUsed > 0, `system: ${JSON.stringify(metrics.system)}`);
  assert.ok(metrics.system.totalMemory > 0);
  assert.ok(Array.isArray(metrics.agents));
  assert.ok(names(metrics.agents).includes('Alice'), `metrics agents: ${names(metrics.agents)}`);
});

await check('10 unknown recipient does not break the client', async () => {
  assert.equal(alice.client.sendMessage('NoSuchAgent', 'into the void'), true);
  await roundTrip(alice);
  await sleep(100);
  assert.equal(alice.client.state, 'READY');
  assert.deepEqual(alice.errors, [], 'no client-side errors');
  assert.equal(alice.client.sendMessage('Bob', 'after the void'), true);
  await waitFor(() => withBody(bob, 'after the void').length, 5_000, 'Bob to receive the next message');
  assert.equal(alice.client.state, 'READY');
});

for (const rec of [alice, bob, carol]) {
  if (rec.errors.length) {
    failures++;
    console.log(`not ok - ${rec.name} saw client errors: ${rec.errors.map((e) => e.message).join('; ')}`);
  }
  rec.client.destroy();
}
dave2?.client.destroy();

console.log(failures === 0 ? '# all scenarios passed' : `# ${failures} failure(s)`);
process.exit(failures === 0 ? 0 : 1);
