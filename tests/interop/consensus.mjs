// Consensus through the published `@agent-relay/sdk` RelayClient, unchanged: createProposal and
// vote send text commands to `_consensus`; proposals, replies and results come back as messages
// from `_consensus`.
//
// Usage:  RELAY_SOCKET=/path/to/relay.sock node consensus.mjs
// Exit status 0 only when every check passed; every wait is bounded.

import assert from 'node:assert/strict';
import { RelayClient } from '@agent-relay/sdk';

const SOCKET = process.env.RELAY_SOCKET;
if (!SOCKET) {
  console.error('RELAY_SOCKET must name the daemon socket');
  process.exit(2);
}
setTimeout(() => {
  console.log('not ok - script: still running after 60 s');
  process.exit(3);
}, 60_000).unref();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = pred();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

async function agent(name) {
  const client = new RelayClient({ socketPath: SOCKET, agentName: name, quiet: true, reconnect: false });
  const rec = { name, client, messages: [] };
  client.onMessage = (from, payload, id, meta) => rec.messages.push({ from, payload, id, meta });
  await client.connect();
  assert.equal(client.state, 'READY');
  return rec;
}

const fromConsensus = (rec, pred) =>
  rec.messages.filter((m) => m.from === '_consensus' && typeof m.payload?.body === 'string' && pred(m.payload.body));
const propId = (body) => (body.match(/prop_[A-Za-z0-9]+/) || [])[0];

let failures = 0;
async function check(name, fn) {
  const started = Date.now();
  try {
    await fn();
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    failures++;
    console.log(`not ok - ${name}: ${String(err && (err.stack || err.message) || err).replace(/\n/g, '\n    ')}`);
  }
}

const pat = await agent('Pat');
const quinn = await agent('Quinn');
const rita = await agent('Rita');
const sam = await agent('Sam');
let id;

await check('createProposal reaches every participant from _consensus, with the id and how to vote', async () => {
  assert.equal(
    pat.client.createProposal({
      title: 'Ship v2',
      description: 'Release v2 today?\nAll tests pass.',
      participants: ['Quinn', 'Rita'],
      consensusType: 'majority',
      timeoutMs: 60_000,
    }),
    true,
  );
  for (const who of [quinn, rita]) {
    const [p] = await waitFor(() => { const f = fromConsensus(who, (b) => b.includes('Ship v2')); return f.length ? f : null; }, 5_000, `${who.name} gets the proposal`);
    id = propId(p.payload.body);
    assert.ok(id, `the proposal names its id: ${p.payload.body}`);
    assert.match(p.payload.body, /VOTE/);
  }
  await waitFor(() => fromConsensus(pat, (b) => b.includes(id)).length > 0, 5_000, 'the proposer gets an acknowledgement naming the id');
});

await check('votes resolve it; proposer and participants get CONSENSUS RESULT: APPROVED', async () => {
  quinn.client.vote({ proposalId: id, value: 'approve', reason: 'looks good' });
  rita.client.vote({ proposalId: id, value: 'approve' });
  for (const who of [pat, quinn, rita]) {
    await waitFor(() => fromConsensus(who, (b) => b.includes('CONSENSUS RESULT') && b.includes('APPROVED') && b.includes(id)).length === 1, 5_000, `${who.name} gets the result once`);
  }
  await waitFor(() => fromConsensus(quinn, (b) => b.includes(id) && !b.includes('CONSENSUS RESULT') && /accepted|recorded/i.test(b)).length > 0, 5_000, 'the voter gets a reply to its vote');
});

await check('a vote from a non-participant gets an error reply', async () => {
  pat.client.createProposal({ title: 'Open question', description: 'x', participants: ['Quinn', 'Rita'], consensusType: 'majority', timeoutMs: 60_000 });
  const [p] = await waitFor(() => { const f = fromConsensus(quinn, (b) => b.includes('Open question')); return f.length ? f : null; }, 5_000, 'Quinn gets the open proposal');
  sam.client.vote({ proposalId: propId(p.payload.body), value: 'reject' });
  await waitFor(() => fromConsensus(sam, (b) => /not a participant/i.test(b)).length > 0, 5_000, 'an error naming the problem');
});

await check('a vote on an unknown proposal gets an error reply', async () => {
  sam.client.vote({ proposalId: 'prop_doesnotexist', value: 'approve' });
  await waitFor(() => fromConsensus(sam, (b) => /unknown proposal|no proposal/i.test(b) && b.includes('prop_doesnotexist')).length > 0, 5_000, 'an error naming the id');
});

await check('an offline participant receives the proposal when it connects', async () => {
  pat.client.createProposal({ title: 'Offline vote', description: 'x', participants: ['Quinn', 'Tess'], consensusType: 'unanimous', timeoutMs: 60_000 });
  await waitFor(() => fromConsensus(quinn, (b) => b.includes('Offline vote')).length > 0, 5_000, 'Quinn gets it now');
  const tess = await agent('Tess');
  await waitFor(() => fromConsensus(tess, (b) => b.includes('Offline vote')).length > 0, 5_000, 'Tess gets it on connect');
  tess.client.disconnect();
});

await check('expiry always produces a final result that is sent', async () => {
  pat.client.createProposal({ title: 'Nobody votes', description: 'x', participants: ['Quinn', 'Rita'], consensusType: 'majority', timeoutMs: 800 });
  for (const who of [pat, quinn, rita]) {
    await waitFor(() => fromConsensus(who, (b) => b.includes('CONSENSUS RESULT') && b.includes('NO_CONSENSUS')).length > 0, 8_000, `${who.name} gets NO_CONSENSUS`);
  }
});

for (const r of [pat, quinn, rita, sam]) r.client.disconnect();
process.exit(failures === 0 ? 0 : 1);
