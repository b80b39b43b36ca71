'use strict';
// The browser page of the local labmate dev workspace: a small Slack lookalike over the
// server's /ui/* API (long-polled state, send, click, upload). Plain DOM, no build step.

const $ = (selector) => document.querySelector(selector);
const POLL_WAIT_S = 25;
const BOT_ID = 'U0LABMATE';
const COLORS = ['#e8912d', '#2bac76', '#1d9bd1', '#e01e5a', '#7c3085', '#0b4c8c', '#de4e2b', '#3aa3e3', '#4a154b', '#d4a20b'];

// What the server last told us, and what only this page knows.
const S = { version: -1, team: '', me: { id: '', name: '' }, channels: [], commands: [], messages: [], notice: '' };
const ui = {
  channel: null, threadTs: null,  // the channel shown; the thread the composer replies in
  seen: null,                     // channel id -> message count when last viewed (unread badges)
  users: { [BOT_ID]: 'labmate' }, // user id -> name, learnt from messages
  pinned: true, justSent: false,  // keep the pane at the bottom as messages arrive?
  dismissedNotice: null, shownNotice: null, sending: false,
  cache: new Map(),               // message key -> {sig, el}: unchanged messages keep their DOM
  groups: new Map(),              // top-level message key -> group element (message + thread)
  slashIndex: -1,                 // highlighted command in the slash popup (-1: none, Enter sends)
};

// ---------- small helpers ----------

/** Create an element: props (class, text, html, data, on<event>, attributes) and children. */
function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'html') el.innerHTML = value;
    else if (key === 'data') for (const [k, v] of Object.entries(value)) { if (v != null) el.dataset[k] = v; }
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const kid of kids.flat()) if (kid != null && kid !== false) el.append(kid);
  return el;
}

const cls = (...names) => names.filter(Boolean).join(' ');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const isReply = (m) => !!m.thread_ts && m.thread_ts !== m.ts;
const msgKey = (m) => `${m.channel}|${m.ts}|${m.ephemeral ? 'e' : ''}`;
const userName = (id) => ui.users[id] || id;
const channelName = (id) => (S.channels.find((c) => c.id === id) || {}).name || id;
const countIn = (channel) => S.messages.reduce((n, m) => n + (m.channel === channel), 0);

const hhmm = (ts) => new Date(parseFloat(ts) * 1000).toTimeString().slice(0, 5);

function initials(name) {
  const words = String(name || '?').split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[1][0] : (words[0] || '?')[0]).toUpperCase();
}

function colorFor(key) {
  let hash = 0;
  for (const ch of String(key)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return COLORS[hash % COLORS.length];
}

/** Make the first `kids.length` children of `parent` be `kids`, moving only what is out of place. */
function setChildren(parent, kids) {
  kids.forEach((kid, i) => { if (parent.children[i] !== kid) parent.insertBefore(kid, parent.children[i] || null); });
  while (parent.children.length > kids.length) parent.lastElementChild.remove();
}


// ---------- messages ----------

function messageEl(m, reply) {
  const name = m.user_name || userName(m.user) || 'unknown';
  const date = new Date(parseFloat(m.ts) * 1000);
  const body = h('div', { class: 'message-body' });
  if (Array.isArray(m.blocks) && m.blocks.length) body.append(...m.blocks.map(renderBlock));
  else body.append(h('div', { class: 'text', html: mrkdwn(m.text) }));
  if (m.files?.length) body.append(h('div', { class: 'files' }, m.files.map(renderFile)));
  return h('div', {
    class: cls('message', m.is_bot && 'bot', m.ephemeral && 'ephemeral', reply && 'reply'),
    data: { ts: m.ts, channel: m.channel, user: m.user || '' },
  },
  h('div', { class: 'gutter' },
    h('div', { class: 'avatar', style: `background:${colorFor(m.user || name)}`, text: initials(name) }),
    h('span', { class: 'gutter-time', text: hhmm(m.ts) })),
  h('div', { class: 'message-content' },
    m.ephemeral && h('div', { class: 'only-you', text: 'Only visible to you' }),
    h('div', { class: 'message-header' },
      h('span', { class: 'author', text: name }),
      m.is_bot && h('span', { class: 'app-tag', text: 'APP' }),
      h('time', { class: 'time', title: date.toLocaleString(), text: hhmm(m.ts) })),
    body,
    m.edits > 0 && h('span', { class: 'edited', text: '(edited)' })),
  !reply && !m.ephemeral && h('button', { class: 'reply-link', type: 'button', text: 'Reply in thread' }));
}

/** The cached element for `m`, rebuilt (and swapped in place) only when the message changed. */
function cachedMessage(m, reply, live) {
  const key = msgKey(m);
  const sig = JSON.stringify(m) + reply;
  live.add(key);
  const hit = ui.cache.get(key);
  if (hit && hit.sig === sig) return hit.el;
  const el = messageEl(m, reply);
  if (hit) hit.el.replaceWith(el);
  ui.cache.set(key, { sig, el });
  return el;
}

function groupEl(key) {
  let g = ui.groups.get(key);
  if (!g) {
    g = h('div', { class: 'message-group' });
    g.thread = h('div', { class: 'thread' },
      h('button', { class: 'thread-header', type: 'button' }), h('div', { class: 'thread-replies' }));
    ui.groups.set(key, g);
  }
  return g;
}

/** Bring the message list of the current channel in line with the state, keeping unchanged DOM. */
function renderMessages() {
  const stick = ui.pinned || ui.justSent;
  const groups = [];
  const parents = new Map();
  for (const m of S.messages) {
    if (m.channel !== ui.channel) continue;
    const parent = isReply(m) && parents.get(m.thread_ts);
    if (parent) parent.replies.push(m);
    else {
      const g = { key: msgKey(m), msg: m, replies: [] };
      groups.push(g);
      if (!m.ephemeral && !isReply(m)) parents.set(m.ts, g);
    }
  }
  const live = new Set();
  let prev = null;
  const groupEls = groups.map((g) => {
    const el = groupEl(g.key);
    const msgEl = cachedMessage(g.msg, isReply(g.msg), live);
    // Slack folds a quick follow-up by the same author under the previous header.
    const follows = prev && !prev.replies.length && prev.msg.user === g.msg.user && !isReply(prev.msg)
      && !isReply(g.msg) && !!prev.msg.ephemeral === !!g.msg.ephemeral
      && parseFloat(g.msg.ts) - parseFloat(prev.msg.ts) < 300;
    msgEl.classList.toggle('continued', !!follows);
    if (g.replies.length) {
      const n = g.replies.length;
      el.thread.firstChild.textContent = `${n} ${n === 1 ? 'reply' : 'replies'}`;
      setChildren(el.thread.lastChild, g.replies.map((r) => cachedMessage(r, true, live)));
    }
    setChildren(el, g.replies.length ? [msgEl, el.thread] : [msgEl]);
    el.parentTs = g.msg.ephemeral ? null : g.msg.ts;   // a JS property: data-ts belongs to .message only
    el.classList.toggle('threading', !!ui.threadTs && el.parentTs === ui.threadTs);
    prev = g;
    return el;
  });
  setChildren($('#messages'), groupEls);
  const liveGroups = new Set(groups.map((g) => g.key));
  for (const key of ui.cache.keys()) if (!live.has(key)) ui.cache.delete(key);
  for (const key of ui.groups.keys()) if (!liveGroups.has(key)) ui.groups.delete(key);
  if (ui.threadTs && !groups.some((g) => g.msg.ts === ui.threadTs)) endThread();
  if (stick) scrollToBottom();
  ui.justSent = false;
}

function scrollToBottom() {
  const pane = $('#pane');
  pane.scrollTop = pane.scrollHeight;
  ui.pinned = true;
}

// ---------- sidebar, header, notice ----------

function renderSidebar() {
  $('#team-name').textContent = S.team || 'workspace';
  const list = $('#channel-list');
  const links = S.channels.map((c) => {
    const link = list.querySelector(`.channel-link[data-channel="${CSS.escape(c.id)}"]`)
      || h('a', { class: 'channel-link', href: `#${c.id}`, data: { channel: c.id } },
        h('span', { class: 'hash', text: '#' }), h('span', { class: 'channel-name' }), h('span', { class: 'badge' }));
    const unread = c.id === ui.channel ? 0 : Math.max(0, countIn(c.id) - (ui.seen[c.id] ?? 0));
    link.querySelector('.channel-name').textContent = c.name;
    link.querySelector('.badge').textContent = unread || '';
    link.classList.toggle('active', c.id === ui.channel);
    link.classList.toggle('unread', unread > 0);
    return link;
  });
  setChildren(list, links);
  const me = $('#me');
  if (me.dataset.id !== S.me.id) {
    me.dataset.id = S.me.id;
    me.replaceChildren(h('span', { class: 'avatar small', style: `background:${colorFor(S.me.id)}`, text: initials(S.me.name) }),
      h('span', { class: 'me-name', text: S.me.name }), h('span', { class: 'presence', title: 'active' }));
  }
}

function renderHeader() {
  const name = ui.channel ? channelName(ui.channel) : '';
  $('#channel-name').textContent = name;
  document.title = `#${name} · ${S.team || 'labmate'}`;
  $('#drop-target').textContent = `#${name}`;
  if (!ui.threadTs) $('#composer').placeholder = `Message #${name}`;
  $('#intro').replaceChildren(h('div', { class: 'intro-title', text: `# ${name}` }),
    h('div', { class: 'intro-text', text: `This is the very beginning of the #${name} channel in ${S.team || 'this workspace'}.` }));
}

function renderNotice() {
  const text = S.notice || '';
  if (text !== ui.shownNotice) { $('#notice .notice-text').innerHTML = mrkdwn(text); ui.shownNotice = text; }
  $('#notice').hidden = !text || text === ui.dismissedNotice;
}

// ---------- state ----------

/** Take in one answer of /ui/state and redraw what depends on it. */
function apply(data) {
  Object.assign(S, { channels: [], messages: [], commands: [], me: { id: '', name: '' } }, data);
  if (S.me.id) ui.users[S.me.id] = S.me.name;
  for (const m of S.messages) if (m.user && m.user_name) ui.users[m.user] = m.user_name;
  const first = !ui.seen;   // what was there when the page opened counts as read
  ui.seen ??= {};
  for (const c of S.channels) ui.seen[c.id] ??= first ? countIn(c.id) : 0;
  if (!S.channels.some((c) => c.id === ui.channel)) {
    const wanted = decodeURIComponent(location.hash.slice(1));
    const pick = S.channels.find((c) => c.id === wanted) || S.channels.find((c) => c.name === 'general') || S.channels[0];
    if (pick) switchChannel(pick.id, false);
  }
  ui.seen[ui.channel] = countIn(ui.channel);
  renderSidebar(); renderHeader(); renderNotice(); renderMessages();
  document.body.dataset.version = String(S.version);
}

/** Long poll forever. After a failure the next call asks for the state at once (wait=0):
 *  a restarted server may be behind our version and would otherwise hold the answer. */
async function poll() {
  for (let wait = POLL_WAIT_S; ;) {
    let data;
    try {
      const res = await fetch(`/ui/state?since=${encodeURIComponent(S.version)}&wait=${wait}`, { cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      data = await res.json();
    } catch (err) {
      $('#conn').hidden = false;
      wait = 0;
      await sleep(1000);
      continue;
    }
    $('#conn').hidden = true;
    wait = POLL_WAIT_S;
    try { apply(data); } catch (err) { console.error('render failed', err); await sleep(1000); }
  }
}

function switchChannel(id, render = true) {
  if (id === ui.channel) return;
  ui.channel = id;
  endThread();
  ui.cache.clear();
  ui.groups.clear();
  $('#messages').replaceChildren();
  ui.justSent = true;   // a freshly opened channel starts at its latest message
  if (location.hash.slice(1) !== id) history.replaceState(null, '', `#${id}`);
  if (!render) return;
  ui.seen[id] = countIn(id);
  renderSidebar(); renderHeader(); renderMessages();
  $('#composer').focus();
}

// ---------- actions: send, click, upload ----------

/** POST and always answer {ok, error?}: network and HTTP failures become readable errors. */
async function post(url, body) {
  try {
    const form = body instanceof FormData;
    const headers = form ? {} : { 'Content-Type': 'application/json' };
    const res = await fetch(url, { method: 'POST', headers, body: form ? body : JSON.stringify(body) });
    const answer = await res.json().catch(() => null);
    return answer && typeof answer.ok === 'boolean' ? answer : { ok: false, error: `The server answered HTTP ${res.status}.` };
  } catch (err) {
    return { ok: false, error: 'Could not reach the workspace server.' };
  }
}

function showError(answer) {
  $('#composer-error').textContent = answer.ok ? '' : (answer.error || 'Something went wrong.');
  $('#composer-error').hidden = answer.ok;
}

async function send() {
  const composer = $('#composer');
  const text = composer.value.trim();
  if (!text || ui.sending || !ui.channel) return;
  ui.sending = true;
  const answer = await post('/ui/send', { channel: ui.channel, text, thread_ts: ui.threadTs });
  ui.sending = false;
  showError(answer);
  if (!answer.ok) return;
  if (composer.value.trim() === text) composer.value = '';
  composerChanged();
  if (!ui.threadTs) { ui.justSent = true; scrollToBottom(); }   // a thread reply may sit higher up
}

async function clickButton(button) {
  const message = button.closest('.message');
  button.disabled = true;
  setTimeout(() => { button.disabled = false; }, 1000);   // no double clicks
  if (button.dataset.url) window.open(button.dataset.url, '_blank', 'noopener');
  showError(await post('/ui/click', {
    channel: message.dataset.channel, ts: message.dataset.ts, action_id: button.dataset.actionId,
    block_id: button.dataset.blockId, value: button.dataset.value, text: button.textContent,
  }));
}

async function upload(files) {
  for (const file of files) {
    const form = new FormData();
    form.append('file', file, file.name);
    form.append('channel', ui.channel);
    if (ui.threadTs) form.append('thread_ts', ui.threadTs);
    $('#file-button').classList.add('busy');
    const answer = await post('/ui/upload', form);
    $('#file-button').classList.remove('busy');
    showError(answer);
    if (!answer.ok) break;
    if (!ui.threadTs) ui.justSent = true;
  }
}

function startThread(ts) {
  ui.threadTs = ts;
  $('#thread-chip').hidden = false;
  $('#composer').placeholder = 'Reply in thread…';
  for (const g of document.querySelectorAll('.message-group')) g.classList.toggle('threading', g.parentTs === ts);
  $('#composer').focus();
}

function endThread() {
  ui.threadTs = null;
  $('#thread-chip').hidden = true;
  if (ui.channel) $('#composer').placeholder = `Message #${channelName(ui.channel)}`;
  for (const g of document.querySelectorAll('.message-group.threading')) g.classList.remove('threading');
}

// ---------- composer: autosize, slash popup ----------

function composerChanged() {
  const composer = $('#composer');
  composer.style.height = 'auto';   // shrink first, so scrollHeight is the text's own height
  composer.style.height = `${Math.min(composer.scrollHeight, 200)}px`;
  $('#send').classList.toggle('ready', composer.value.trim() !== '');
  renderSlash();
}

function slashMatches() {
  const value = $('#composer').value;
  if (!value.startsWith('/') || /\s/.test(value)) return [];
  return S.commands.filter((c) => c.command.toLowerCase().startsWith(value.toLowerCase()));
}

function renderSlash() {
  const popup = $('#slash-popup');
  const matches = slashMatches();
  ui.slashIndex = Math.min(ui.slashIndex, matches.length - 1);
  popup.hidden = !matches.length;
  popup.replaceChildren(h('div', { class: 'slash-title', text: 'Commands' }), ...matches.map((c, i) => h('div', {
    class: cls('slash-item', i === ui.slashIndex && 'selected'), role: 'option', data: { command: c.command },
    onmousedown: (e) => e.preventDefault(),   // keep the focus in the composer
    onclick: () => pickCommand(c.command),
  }, h('span', { class: 'slash-command', text: c.command }),
  c.usage_hint && h('span', { class: 'slash-usage', text: c.usage_hint }),
  h('span', { class: 'slash-desc', text: c.description || '' }))));
}

function pickCommand(command) {
  const composer = $('#composer');
  composer.value = `${command} `;
  ui.slashIndex = -1;
  composerChanged();
  composer.focus();
  composer.setSelectionRange(composer.value.length, composer.value.length);
}

function onComposerKey(e) {
  const matches = $('#slash-popup').hidden ? [] : slashMatches();
  if (matches.length && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
    e.preventDefault();
    ui.slashIndex = (ui.slashIndex + (e.key === 'ArrowDown' ? 1 : matches.length - 1 + (ui.slashIndex < 0))) % matches.length;
    renderSlash();
  } else if (matches.length && (e.key === 'Tab' || (e.key === 'Enter' && ui.slashIndex >= 0))) {
    e.preventDefault();   // Enter picks a command only once one was chosen with the arrows
    pickCommand(matches[Math.max(ui.slashIndex, 0)].command);
  } else if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  } else if (e.key === 'Escape') {
    if (!$('#slash-popup').hidden) $('#slash-popup').hidden = true; else endThread();
  }
}

// ---------- wiring ----------

function wire() {
  const composer = $('#composer');
  composer.addEventListener('keydown', onComposerKey);
  composer.addEventListener('input', () => { ui.slashIndex = -1; composerChanged(); });
  composer.addEventListener('blur', () => setTimeout(() => { $('#slash-popup').hidden = true; }, 150));
  composer.addEventListener('focus', renderSlash);
  $('#send').addEventListener('click', send);
  $('#file-button').addEventListener('click', () => $('#file-input').click());
  $('#file-input').addEventListener('change', async (e) => { await upload([...e.target.files]); e.target.value = ''; });
  $('#thread-chip .chip-close').addEventListener('click', () => { endThread(); composer.focus(); });
  $('#notice .notice-close').addEventListener('click', () => { ui.dismissedNotice = S.notice; renderNotice(); });

  // One listener for every message: buttons and thread links are rebuilt as messages change.
  $('#messages').addEventListener('click', (e) => {
    const button = e.target.closest('button.block-button');
    if (button && !button.disabled) return clickButton(button);
    const threadLink = e.target.closest('.reply-link, .thread-header');
    if (threadLink) startThread(threadLink.closest('.message-group').parentTs);
  });
  // Images load after the layout: keep a bottom-pinned pane at the bottom.
  $('#messages').addEventListener('load', () => { if (ui.pinned) scrollToBottom(); }, true);
  const pane = $('#pane');
  pane.addEventListener('scroll', () => { ui.pinned = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40; });

  // Drag and drop a file onto the message pane; a file dropped elsewhere must not open in the tab.
  const wrap = $('#pane-wrap');
  const overlay = $('#drop-overlay');
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
  for (const type of ['dragover', 'drop']) window.addEventListener(type, (e) => { if (hasFiles(e)) e.preventDefault(); });
  wrap.addEventListener('dragover', (e) => { if (hasFiles(e)) overlay.hidden = false; });
  wrap.addEventListener('dragleave', (e) => { if (!wrap.contains(e.relatedTarget)) overlay.hidden = true; });
  wrap.addEventListener('drop', (e) => { overlay.hidden = true; if (hasFiles(e)) upload([...e.dataTransfer.files]); });

  window.addEventListener('hashchange', () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (S.channels.some((c) => c.id === id)) switchChannel(id);
  });
  composerChanged();
  poll();
}

document.addEventListener('DOMContentLoaded', wire);
