'use strict';
// Rendering for the workspace page: Slack mrkdwn and Block Kit to DOM nodes. Loaded before
// app.js; uses its small helpers (h, cls, userName, channelName) when called.

const EMOJI = {
  books: '📚', white_check_mark: '✅', x: '❌', warning: '⚠️', hourglass_flowing_sand: '⏳',
  hourglass: '⌛', chart_with_upwards_trend: '📈', memo: '📝', rocket: '🚀', tada: '🎉', mag: '🔎',
  page_facing_up: '📄', stopwatch: '⏱️', robot_face: '🤖', gear: '⚙️', no_entry_sign: '🚫',
  octagonal_sign: '🛑', runner: '🏃', writing_hand: '✍️', zzz: '💤', eyes: '👀', thumbsup: '👍',
};

// ---------- mrkdwn ----------

const esc = (s) => String(s ?? '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
// Slack text arrives with literal & < > already escaped; after our escaping they read "&amp;lt;".
const unslack = (s) => s.replace(/&amp;(amp|lt|gt);/g, '&$1;');
const literal = (s) => unslack(esc(s));
const emojify = (html) => html.replace(/:([a-z0-9_+-]+):/g, (all, name) => EMOJI[name] || all);

/** One line of text outside code and <...> markup: escape, then emoji, *bold*, _italic_, ~strike~. */
function inline(text) {
  const span = (mark) => new RegExp(`(^|[^\\w${mark}])\\${mark}(\\S(?:[^${mark}\\n]*?\\S)?)\\${mark}(?![\\w${mark}])`, 'g');
  return unslack(emojify(esc(text))
    .replace(span('*'), '$1<b>$2</b>')
    .replace(span('_'), '$1<i>$2</i>')
    .replace(span('~'), '$1<s>$2</s>'));
}

/** Slack's <...> markup: links, user/channel mentions, special mentions. */
function angle(inner) {
  const bar = inner.indexOf('|');
  const target = bar < 0 ? inner : inner.slice(0, bar);
  const label = bar < 0 ? '' : inner.slice(bar + 1);
  const mention = (text) => `<span class="mention">${text}</span>`;
  if (target[0] === '@') return mention('@' + (label ? literal(label).replace(/^@/, '') : esc(userName(target.slice(1)))));
  if (target[0] === '#') return mention('#' + (label ? literal(label) : esc(channelName(target.slice(1)))));
  if (target[0] === '!') {
    const word = target.slice(1).split('^')[0];
    if (word === 'date') return literal(label);
    return mention(label ? literal(label) : '@' + esc(word));
  }
  const href = target.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
  if (/^(https?:|mailto:)/i.test(href)) {
    return `<a href="${esc(href)}" target="_blank" rel="noopener noreferrer">${emojify(literal(label || target))}</a>`;
  }
  return literal(`<${inner}>`);
}

/** mrkdwn text -> safe HTML. Code and markup are cut out first so nothing formats inside them. */
function mrkdwn(text) {
  const slots = [];
  const keep = (html) => `\u0000${slots.push(html) - 1}\u0000`;
  // A ```pre``` block always stands on a line of its own.
  const source = String(text ?? '')
    .replace(/\n?```\n?([\s\S]*?)\n?```\n?/g, (_, code) => `\n${keep(`<pre>${literal(code)}</pre>`)}\n`)
    .replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${literal(code)}</code>`))
    .replace(/<([^<>\n]+)>/g, (_, inner) => keep(angle(inner)));
  const parts = [];   // [html, isBlock]
  let quote = [];
  const flush = () => { if (quote.length) parts.push([`<blockquote>${quote.join('<br>')}</blockquote>`, true]); quote = []; };
  for (const line of source.split('\n')) {
    const m = /^(?:&gt;|>) ?(.*)$/.exec(line);
    const pre = /^\u0000(\d+)\u0000$/.exec(line);
    if (m) quote.push(inline(m[1]));
    else { flush(); parts.push([inline(line), !!pre && slots[pre[1]].startsWith('<pre')]); }
  }
  flush();
  // <br> only between two lines of text: blocks already break the line.
  const html = parts.map(([part, block], i) => (i && !block && !parts[i - 1][1] ? '<br>' : '') + part).join('');
  return html.replace(/\u0000(\d+)\u0000/g, (_, i) => slots[i]);
}

// ---------- Block Kit ----------

function textObj(t) {
  if (!t) return '';
  return t.type === 'mrkdwn' ? mrkdwn(t.text) : emojify(literal(t.text));
}

/** An interactive element: buttons work, the rest show their placeholder, disabled. */
function element(e, block) {
  if (e.type === 'button') {
    return h('button', {
      class: cls('block-button', e.style), type: 'button', html: textObj(e.text),
      data: { actionId: e.action_id || '', value: e.value ?? '', blockId: block.block_id || '', url: e.url },
    });
  }
  if (e.type === 'image') return h('img', { class: 'accessory-image', src: e.image_url || e.slack_file?.url, alt: e.alt_text || '' });
  const label = e.placeholder?.text || e.initial_option?.text?.text || (e.type === 'overflow' ? '⋯' : e.type);
  return h('button', { class: 'block-placeholder', type: 'button', disabled: true, text: `${label} ▾` });
}

/** rich_text: its plain text, one line per section. */
function richText(elements) {
  const walk = (e) => {
    if (Array.isArray(e.elements)) {
      return e.elements.map(walk).join('') + (/^rich_text_(section|preformatted|quote)$/.test(e.type) ? '\n' : '');
    }
    if (e.type === 'emoji') return EMOJI[e.name] || `:${e.name}:`;
    if (e.type === 'user') return '@' + userName(e.user_id);
    if (e.type === 'channel') return '#' + channelName(e.channel_id);
    if (e.type === 'broadcast') return '@' + e.range;
    return e.text || e.url || '';
  };
  return (elements || []).map(walk).join('').replace(/\n+$/, '');
}

function renderBlock(b) {
  switch (b.type) {
    case 'section':
      return h('div', { class: 'block section' },
        h('div', { class: 'section-main' },
          b.text && h('div', { class: 'section-text', html: textObj(b.text) }),
          b.fields && h('div', { class: 'fields' }, b.fields.map((f) => h('div', { class: 'field', html: textObj(f) })))),
        b.accessory && h('div', { class: 'accessory' }, element(b.accessory, b)));
    case 'header':
      return h('div', { class: 'block header', html: textObj(b.text) });
    case 'context':
      return h('div', { class: 'block context' }, (b.elements || []).map((e) => (e.type === 'image'
        ? h('img', { class: 'context-image', src: e.image_url || e.slack_file?.url, alt: e.alt_text || '' })
        : h('span', { class: 'context-text', html: textObj(e) }))));
    case 'actions':
      return h('div', { class: 'block actions' }, (b.elements || []).map((e) => element(e, b)));
    case 'divider':
      return h('hr', { class: 'block divider' });
    case 'image':
      return h('figure', { class: 'block image' },
        b.title && h('figcaption', { html: textObj(b.title) }),
        h('img', { src: b.image_url || b.slack_file?.url, alt: b.alt_text || '', title: b.title?.text }));
    case 'rich_text':
      return h('div', { class: 'block rich-text', text: richText(b.elements) });
    default:
      return h('div', { class: 'block unsupported', text: `[unsupported block: ${b.type}]` });
  }
}

function renderFile(f) {
  const title = f.title || f.name;
  if ((f.mimetype || '').startsWith('image/')) {
    return h('div', { class: 'file-image' }, h('div', { class: 'file-title', text: title }),
      h('a', { href: f.url, target: '_blank', rel: 'noopener' }, h('img', { src: f.url, alt: title })));
  }
  return h('a', { class: 'file-card', href: f.url, target: '_blank', rel: 'noopener', download: f.name },
    h('span', { class: 'file-icon', text: '📄' }), h('span', { class: 'file-meta' },
      h('span', { class: 'file-name', text: title }), h('span', { class: 'file-type', text: f.mimetype || 'file' })));
}
