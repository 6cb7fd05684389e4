/*
 * Support gateway web chat widget.
 *
 * Embed with one tag:
 *   <script src="https://support.example.com/webchat/widget.js" async></script>
 *
 * Options (data-attributes on that script tag):
 *   data-title     header text (default "Chat with us")
 *   data-target    id of an element to mount the chat inline and open; without it a
 *                  floating launcher bubble (bottom-right) opens the chat panel
 *   data-greeting  first line shown locally above the conversation (never sent)
 *
 * Plain JavaScript, no dependencies, no build step. All server and user text is rendered
 * with textContent, never as HTML. Protocol: docs/webchat.md.
 *
 * Theming: the host page may override the CSS custom properties declared on :where(.gw-chat)
 * (zero specificity), e.g. `.gw-chat { --gw-accent: #0a7d4f; --gw-height: 640px; }`.
 */
(() => {
  'use strict';

  const SCRIPT_SUFFIX = '/webchat/widget.js';
  const MAX_TEXT = 4000;
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 15000;
  const RESEND_AFTER_MS = 10000;
  const MAX_RESENDS_PER_CONNECTION = 5;
  const TYPING_TIMEOUT_MS = 20000;
  const NOTICE_MS = 6000;
  const AUTHORS = ['customer', 'ai', 'agent', 'system'];
  const STATUS_TEXT = {
    ai: "You're chatting with our virtual assistant",
    waiting_for_agent: 'Connecting you with a person\u2026',
    with_agent: "You're chatting with our team",
    resolved: 'This conversation is resolved',
  };
  const ERROR_TEXT = {
    rate_limited: "You're sending messages too quickly. We'll retry in a moment.",
    text_too_long: `That message is too long (at most ${MAX_TEXT} characters).`,
    empty_text: "An empty message can't be sent.",
    bad_frame: 'Something went wrong sending your message.',
    bad_attachment: "A file in that message isn't available any more, so the message wasn't sent.",
    malformed_text: "That message has a broken character (half an emoji?), so it wasn't sent.",
  };
  // Refusals the server repeats however often a message is resent: give up on that message.
  const FINAL_ERRORS = ['text_too_long', 'empty_text', 'bad_frame', 'bad_attachment', 'malformed_text'];
  // A newer socket of this conversation (another tab) took this one's place: wait for the customer.
  const CLOSE_REPLACED = 4409;

  // ---------------------------------------------------------------- locate our script tag

  const scriptPath = (s) => {
    try {
      return new URL(s.src, document.baseURI).pathname;
    } catch (_) {
      return '';
    }
  };
  const claimed = (window.__gwChatScripts = window.__gwChatScripts || new WeakSet());

  function findScript() {
    const cur = document.currentScript;
    if (cur && cur.src && !claimed.has(cur) && scriptPath(cur).endsWith(SCRIPT_SUFFIX)) return cur;
    // document.currentScript can be null (async scripts in some loaders, injected tags):
    // take the last not-yet-claimed <script> whose src ends in /webchat/widget.js.
    const all = document.querySelectorAll('script[src]');
    for (let i = all.length - 1; i >= 0; i--) {
      if (!claimed.has(all[i]) && scriptPath(all[i]).endsWith(SCRIPT_SUFFIX)) return all[i];
    }
    return null;
  }

  const script = findScript();
  if (!script) {
    console.warn('[webchat] could not find the <script> tag that loaded widget.js');
    return;
  }
  claimed.add(script);
  const scriptUrl = new URL(script.src, document.baseURI);
  const BASE = scriptUrl.origin + scriptUrl.pathname.slice(0, -SCRIPT_SUFFIX.length);
  const instances = (window.__gwChatInstances = window.__gwChatInstances || {});
  if (instances[BASE]) return; // the same gateway's widget is already on this page
  instances[BASE] = true;

  const OPTIONS = {
    title: (script.getAttribute('data-title') || '').trim() || 'Chat with us',
    target: (script.getAttribute('data-target') || '').trim(),
    greeting: (script.getAttribute('data-greeting') || '').trim(),
  };

  // ---------------------------------------------------------------- small utilities

  function makeStore(getBackend) {
    let backend = null;
    try {
      backend = getBackend();
      backend.setItem('__gw_probe', '1');
      backend.removeItem('__gw_probe');
    } catch (_) {
      backend = null; // private mode, sandboxed iframe, disabled storage: keep it in memory
    }
    const mem = new Map();
    return {
      get(key) {
        try {
          const raw = mem.has(key) ? mem.get(key) : backend ? backend.getItem(key) : null;
          return raw == null ? null : JSON.parse(raw);
        } catch (_) {
          return null;
        }
      },
      set(key, value) {
        const raw = JSON.stringify(value);
        try {
          if (!backend) throw new Error('no storage');
          backend.setItem(key, raw);
          mem.delete(key);
        } catch (_) {
          mem.set(key, raw);
        }
      },
      del(key) {
        mem.delete(key);
        try {
          if (backend) backend.removeItem(key);
        } catch (_) {
          /* ignore */
        }
      },
    };
  }

  const local = makeStore(() => window.localStorage);
  const perTab = makeStore(() => window.sessionStorage);
  const KEY = {
    session: `gw-chat:${BASE}:session`,
    outbox: `gw-chat:${BASE}:outbox`,
    lastRead: `gw-chat:${BASE}:last-read`,
    open: `gw-chat:${BASE}:open`,
  };

  function uuid() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === 'function') {
      try {
        return c.randomUUID(); // only in secure contexts (https, localhost)
      } catch (_) {
        /* fall through */
      }
    }
    const b = new Uint8Array(16);
    if (c && typeof c.getRandomValues === 'function') c.getRandomValues(b);
    else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // A client_msg_id the server can store and echo: a non-empty string without lone surrogates
  // (uuid() never makes one; an outbox edited or corrupted in localStorage might).
  function validId(id) {
    return typeof id === 'string' && id.length > 0 && id.length <= 100 && !/[\uD800-\uDFFF]/u.test(id);
  }

  function h(tag, cls, attrs, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (attrs) for (const k of Object.keys(attrs)) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  const ICONS = {
    chat: { fill: 'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2zM7 9h10v2H7zm0-3h10v2H7zm0 6h7v2H7z' },
    close: { stroke: 'M6 6l12 12M18 6L6 18' },
    minimize: { stroke: 'M6 9l6 6 6-6' },
    send: { fill: 'M3.4 20.4l17.45-7.48a1 1 0 0 0 0-1.84L3.4 3.6a.99.99 0 0 0-1.39.91L2 9.12c0 .5.37.93.87.99L17 12 2.87 13.88c-.5.07-.87.5-.87 1l.01 4.61c0 .71.73 1.2 1.39.91z' },
    clip: { stroke: 'M21 11l-8.5 8.5a5 5 0 0 1-7-7L14 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L15 7' },
  };

  function icon(name) {
    const def = ICONS[name];
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', 'gw-chat__icon');
    const path = document.createElementNS(SVG_NS, 'path');
    if (def.fill) {
      path.setAttribute('d', def.fill);
      path.setAttribute('fill', 'currentColor');
    } else {
      path.setAttribute('d', def.stroke);
      path.setAttribute('fill', 'none');
      path.setAttribute('stroke', 'currentColor');
      path.setAttribute('stroke-width', '2');
      path.setAttribute('stroke-linecap', 'round');
      path.setAttribute('stroke-linejoin', 'round');
    }
    svg.appendChild(path);
    return svg;
  }

  function formatTime(iso) {
    const d = new Date(iso);
    if (!iso || Number.isNaN(d.getTime())) return '';
    const time = d.toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });
    if (d.toDateString() === new Date().toDateString()) return time;
    return `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })}, ${time}`;
  }

  function humanSize(n) {
    if (n >= 1024 * 1024) return `${Math.round((n / (1024 * 1024)) * 10) / 10} MB`;
    if (n >= 1024) return `${Math.round(n / 1024)} KB`;
    return `${n} bytes`;
  }

  function safeHttpUrl(raw) {
    try {
      const u = new URL(String(raw), BASE + '/');
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch (_) {
      return null;
    }
  }

  // ---------------------------------------------------------------- styles

  const CSS = `
:where(.gw-chat){--gw-accent:#2454d6;--gw-accent-hover:#1c44b3;--gw-accent-fg:#fff;--gw-bg:#fff;--gw-fg:#1b2130;
--gw-muted:#5f6b7d;--gw-border:#e3e7ee;--gw-soft:#f5f7fb;--gw-bubble:#fff;--gw-radius:16px;--gw-height:560px}
.gw-chat{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;font-size:15px;
line-height:1.45;color:var(--gw-fg);text-align:left;letter-spacing:normal;-webkit-text-size-adjust:100%;
text-size-adjust:100%}
.gw-chat :where(div,span,button,textarea,label,time,a,ul,li,strong){all:revert;box-sizing:border-box}
.gw-chat,.gw-chat *{box-sizing:border-box}
.gw-chat [hidden]{display:none!important}
.gw-chat .gw-chat__sr{position:absolute!important;width:1px!important;height:1px!important;padding:0!important;
margin:-1px!important;overflow:hidden!important;clip:rect(0 0 0 0)!important;white-space:nowrap!important;border:0!important}
.gw-chat .gw-chat__icon{width:20px;height:20px;display:block;flex:none}

.gw-chat .gw-chat__panel{display:flex;flex-direction:column;background:var(--gw-bg);color:var(--gw-fg);
border:1px solid var(--gw-border);border-radius:var(--gw-radius);overflow:hidden;min-width:0}
.gw-chat--inline{display:block;width:100%}
.gw-chat--inline .gw-chat__panel{width:100%;height:var(--gw-height);max-height:100%;box-shadow:0 1px 3px rgba(16,24,40,.06)}
.gw-chat--floating .gw-chat__panel{position:fixed;right:20px;bottom:96px;width:380px;
height:min(640px,calc(100vh - 120px));z-index:2147483000;
box-shadow:0 16px 48px rgba(16,24,40,.18),0 2px 8px rgba(16,24,40,.08);
animation:gw-chat-in .18s ease-out;transform-origin:bottom right}
@keyframes gw-chat-in{from{opacity:0;transform:translateY(8px) scale(.98)}to{opacity:1;transform:none}}

.gw-chat .gw-chat__header{display:flex;align-items:center;gap:12px;padding:14px 16px;background:var(--gw-accent);
color:var(--gw-accent-fg);flex:none}
.gw-chat .gw-chat__avatar{width:36px;height:36px;border-radius:50%;background:rgba(255,255,255,.18);
display:flex;align-items:center;justify-content:center;flex:none}
.gw-chat .gw-chat__heading{flex:1;min-width:0;display:flex;flex-direction:column}
.gw-chat .gw-chat__title{font-size:16px;font-weight:600;line-height:1.25;margin:0;overflow:hidden;
text-overflow:ellipsis;white-space:nowrap;color:inherit}
.gw-chat .gw-chat__conn{display:flex;align-items:center;gap:6px;font-size:12.5px;line-height:1.3;opacity:.92;
margin-top:2px;color:inherit}
.gw-chat .gw-chat__conn::before{content:"";width:7px;height:7px;border-radius:50%;background:#9aa4b2;flex:none}
.gw-chat .gw-chat__conn[data-state="online"]::before{background:#4ade80}
.gw-chat .gw-chat__conn[data-state="connecting"]::before,
.gw-chat .gw-chat__conn[data-state="reconnecting"]::before{background:#fbbf24;animation:gw-chat-pulse 1.2s infinite}
@keyframes gw-chat-pulse{50%{opacity:.35}}
.gw-chat .gw-chat__iconbtn{appearance:none;border:0;margin:0;padding:0;width:36px;height:36px;border-radius:10px;
background:transparent;color:inherit;cursor:pointer;display:flex;align-items:center;justify-content:center;flex:none}
.gw-chat .gw-chat__iconbtn:hover{background:rgba(255,255,255,.16)}
.gw-chat .gw-chat__iconbtn:focus-visible{outline:2px solid #fff;outline-offset:-2px}

.gw-chat .gw-chat__status{flex:none;display:flex;align-items:center;gap:8px;padding:8px 16px;font-size:13px;
line-height:1.35;color:var(--gw-muted);background:var(--gw-soft);border-bottom:1px solid var(--gw-border)}
.gw-chat .gw-chat__status::before{content:"";width:6px;height:6px;border-radius:50%;background:var(--gw-accent);flex:none}
.gw-chat .gw-chat__status[data-status="waiting_for_agent"]{color:#8a5a00;background:#fff8e6}
.gw-chat .gw-chat__status[data-status="waiting_for_agent"]::before{background:#f59e0b;animation:gw-chat-pulse 1.2s infinite}
.gw-chat .gw-chat__status[data-status="with_agent"]{color:#116a3b;background:#ecfaf1}
.gw-chat .gw-chat__status[data-status="with_agent"]::before{background:#22c55e}
.gw-chat .gw-chat__status[data-status="resolved"]::before{background:#9aa4b2}

.gw-chat .gw-chat__messages{flex:1;min-height:0;overflow-y:auto;overscroll-behavior:contain;padding:16px;
display:flex;flex-direction:column;gap:12px;background:var(--gw-soft);-webkit-overflow-scrolling:touch}
.gw-chat .gw-chat__messages:focus-visible{outline:2px solid var(--gw-accent);outline-offset:-2px}
.gw-chat .gw-chat__empty{margin:auto;padding:24px 12px;text-align:center;color:var(--gw-muted);font-size:14px;max-width:260px}
.gw-chat .gw-chat__greeting{align-self:flex-start;max-width:85%;padding:10px 14px;border-radius:4px 16px 16px 16px;
background:var(--gw-bubble);border:1px solid var(--gw-border);white-space:pre-wrap;overflow-wrap:anywhere}
.gw-chat .gw-chat__msg{display:flex;flex-direction:column;align-items:flex-start;max-width:100%;min-width:0}
.gw-chat .gw-chat__msg[data-author="customer"]{align-items:flex-end}
.gw-chat .gw-chat__meta{display:flex;gap:6px;align-items:baseline;font-size:12px;line-height:1.3;color:var(--gw-muted);
margin:0 4px 4px}
.gw-chat .gw-chat__author{font-weight:600;color:#3b4556}
.gw-chat .gw-chat__bubble{max-width:85%;min-width:0;padding:9px 13px;border-radius:16px;background:var(--gw-bubble);
border:1px solid var(--gw-border);color:var(--gw-fg);border-top-left-radius:4px}
.gw-chat .gw-chat__msg[data-author="customer"] .gw-chat__bubble{background:var(--gw-accent);border-color:var(--gw-accent);
color:var(--gw-accent-fg);border-top-left-radius:16px;border-top-right-radius:4px}
.gw-chat .gw-chat__msg[data-author="agent"] .gw-chat__bubble{border-color:#bfe3cc;background:#f3fbf6}
.gw-chat .gw-chat__text{white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word;font-size:15px;line-height:1.45;color:inherit}
.gw-chat .gw-chat__msg[data-author="system"]{align-items:center;text-align:center}
.gw-chat .gw-chat__msg[data-author="system"] .gw-chat__meta{margin-bottom:2px}
.gw-chat .gw-chat__msg[data-author="system"] .gw-chat__bubble{background:transparent;border:0;padding:0 8px;
color:var(--gw-muted);font-size:13px;max-width:90%}
.gw-chat .gw-chat__msg[data-author="system"] .gw-chat__text{font-size:13px}
.gw-chat .gw-chat__msg--pending .gw-chat__bubble{opacity:.7}
.gw-chat .gw-chat__state{font-size:12px;color:var(--gw-muted);margin:4px 4px 0}
.gw-chat .gw-chat__msg--failed .gw-chat__state{color:#b42318}
.gw-chat .gw-chat__edited{font-style:italic}
.gw-chat .gw-chat__text--deleted{font-style:italic;color:var(--gw-muted)}
.gw-chat .gw-chat__msg[data-author="customer"] .gw-chat__text--deleted{color:inherit;opacity:.85}
.gw-chat .gw-chat__files{list-style:none;margin:8px 0 0;padding:0;display:flex;flex-direction:column;gap:4px}
.gw-chat .gw-chat__file{display:inline-flex;align-items:center;gap:6px;color:inherit;text-decoration:underline;
font-size:14px;overflow-wrap:anywhere;cursor:pointer}
.gw-chat span.gw-chat__file{text-decoration:none;cursor:default}
.gw-chat .gw-chat__file .gw-chat__icon{width:16px;height:16px}

.gw-chat .gw-chat__typing{flex:none;display:flex;align-items:center;gap:8px;padding:6px 18px;font-size:12.5px;
color:var(--gw-muted);background:var(--gw-soft)}
.gw-chat .gw-chat__dots{display:inline-flex;gap:3px}
.gw-chat .gw-chat__dots span{width:6px;height:6px;border-radius:50%;background:#9aa4b2;animation:gw-chat-bounce 1.2s infinite}
.gw-chat .gw-chat__dots span:nth-child(2){animation-delay:.15s}
.gw-chat .gw-chat__dots span:nth-child(3){animation-delay:.3s}
@keyframes gw-chat-bounce{0%,60%,100%{transform:none;opacity:.5}30%{transform:translateY(-3px);opacity:1}}

.gw-chat .gw-chat__notice{flex:none;margin:0 12px 8px;padding:8px 12px;border-radius:10px;font-size:13px;
line-height:1.35;background:#fef3f2;color:#912018;border:1px solid #fecdca}
.gw-chat .gw-chat__notice[data-kind="info"]{background:#eef4ff;color:#1d3a8a;border-color:#c7d7fe}

.gw-chat .gw-chat__composer{flex:none;display:flex;align-items:flex-end;gap:8px;padding:10px 12px;
padding-bottom:max(10px,env(safe-area-inset-bottom));border-top:1px solid var(--gw-border);background:var(--gw-bg)}
.gw-chat .gw-chat__field{flex:1;min-width:0;display:flex;flex-direction:column}
.gw-chat .gw-chat__input{display:block;width:100%;margin:0;min-height:44px;max-height:140px;resize:none;
padding:11px 14px;border:1px solid #cfd6e1;border-radius:22px;background:#fff;color:var(--gw-fg);
font-family:inherit;font-size:16px;line-height:1.35;outline:none;overflow-y:auto;box-shadow:none}
.gw-chat .gw-chat__input::placeholder{color:#8792a2;opacity:1}
.gw-chat .gw-chat__input:focus{border-color:var(--gw-accent);box-shadow:0 0 0 3px rgba(36,84,214,.15);
box-shadow:0 0 0 3px color-mix(in srgb,var(--gw-accent) 18%,transparent)}
.gw-chat .gw-chat__count{font-size:12px;color:var(--gw-muted);margin:4px 8px 0;text-align:right}
.gw-chat .gw-chat__send{appearance:none;margin:0;border:0;width:44px;height:44px;border-radius:50%;flex:none;
background:var(--gw-accent);color:var(--gw-accent-fg);cursor:pointer;display:flex;align-items:center;justify-content:center;
padding:0;transition:background .15s,opacity .15s}
.gw-chat .gw-chat__send:hover:not(:disabled){background:var(--gw-accent-hover)}
.gw-chat .gw-chat__send:disabled{background:#c9d1dd;cursor:default}
.gw-chat .gw-chat__send:focus-visible{outline:2px solid var(--gw-accent);outline-offset:2px}
.gw-chat .gw-chat__attach{appearance:none;margin:0;border:0;width:44px;height:44px;border-radius:50%;flex:none;
background:transparent;color:var(--gw-muted);cursor:pointer;display:flex;align-items:center;justify-content:center;padding:0}
.gw-chat .gw-chat__attach:hover:not(:disabled){background:var(--gw-soft);color:var(--gw-fg)}
.gw-chat .gw-chat__attach:disabled{opacity:.45;cursor:default}
.gw-chat .gw-chat__attach:focus-visible{outline:2px solid var(--gw-accent);outline-offset:2px}
.gw-chat .gw-chat__staged{list-style:none;margin:0 0 6px;padding:0;display:flex;flex-wrap:wrap;gap:6px}
.gw-chat .gw-chat__chip{display:inline-flex;align-items:center;gap:4px;max-width:100%;min-height:28px;padding:2px 2px 2px 10px;
border-radius:14px;background:var(--gw-soft);border:1px solid var(--gw-border);font-size:13px;line-height:1.3}
.gw-chat .gw-chat__chip[data-state="uploading"]{opacity:.7;padding-right:10px}
.gw-chat .gw-chat__chipname{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:220px}
.gw-chat .gw-chat__chipx{appearance:none;border:0;margin:0;padding:0;width:24px;height:24px;border-radius:50%;flex:none;
background:transparent;color:var(--gw-muted);cursor:pointer;display:flex;align-items:center;justify-content:center}
.gw-chat .gw-chat__chipx:hover{background:var(--gw-border);color:var(--gw-fg)}
.gw-chat .gw-chat__chipx:focus-visible{outline:2px solid var(--gw-accent);outline-offset:0}
.gw-chat .gw-chat__chipx .gw-chat__icon{width:14px;height:14px}
.gw-chat .gw-chat__upload-error{font-size:13px;line-height:1.35;color:#b42318;margin:0 8px 6px}

.gw-chat .gw-chat__launcher{appearance:none;position:fixed;right:20px;bottom:20px;width:60px;height:60px;margin:0;padding:0;
border:0;border-radius:50%;background:var(--gw-accent);color:var(--gw-accent-fg);cursor:pointer;z-index:2147483000;
display:flex;align-items:center;justify-content:center;box-shadow:0 8px 24px rgba(16,24,40,.22);transition:transform .15s}
.gw-chat .gw-chat__launcher:hover{transform:scale(1.05)}
.gw-chat .gw-chat__launcher:focus-visible{outline:3px solid var(--gw-accent);outline-offset:3px}
.gw-chat .gw-chat__launcher .gw-chat__icon{width:28px;height:28px}
.gw-chat .gw-chat__badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;
background:#e11d48;color:#fff;font-size:12px;font-weight:700;line-height:20px;text-align:center;border:2px solid #fff;box-sizing:content-box}

@media (max-width:480px){
.gw-chat--floating .gw-chat__panel{top:0;left:0;right:0;bottom:0;width:100%;height:100%;height:100dvh;max-height:none;
border:0;border-radius:0;animation:none}
.gw-chat--floating.gw-chat--open .gw-chat__launcher{display:none}
.gw-chat--floating .gw-chat__launcher{right:16px;bottom:16px}
.gw-chat--inline .gw-chat__panel{height:min(var(--gw-height),85vh)}
.gw-chat .gw-chat__bubble{max-width:88%}
}
@media (prefers-reduced-motion:reduce){.gw-chat *{animation:none!important;transition:none!important}}
`;

  function injectStyles() {
    if (document.getElementById('gw-chat-styles')) return;
    const style = h('style', null, { id: 'gw-chat-styles' }, CSS);
    (document.head || document.documentElement).appendChild(style);
  }

  // ---------------------------------------------------------------- the widget

  class ChatWidget {
    constructor(opts) {
      this.opts = opts;
      this.session = null; // {token, conversation_id}
      this.sessionPromise = null;
      this.outbox = []; // [{client_msg_id, text, created_at}]
      this.lastSent = new Map(); // client_msg_id -> ms timestamp of the last send on this connection
      this.resends = 0;
      this.seqEls = new Map(); // seq -> element
      this.pendingEls = new Map(); // client_msg_id -> element
      // seq -> an edit or deletion that arrived before its message (possible during a replay)
      this.earlyRevisions = new Map();
      this.highestSeq = 0;
      this.ws = null;
      this.gen = 0;
      this.connecting = false;
      this.started = false;
      this.everOnline = false;
      this.attempt = 0;
      this.reconnectTimer = null;
      this.resendTimer = null;
      this.badRequests = 0;
      this.quickResets = 0;
      this.replaced = false; // closed with 4409: reconnects only when the customer comes back
      this.typing = { ai: false, agent: false };
      this.typingTimers = {};
      this.agentName = '';
      this.noticeTimer = null;
      this.unread = 0;
      this.lastRead = Number(local.get(KEY.lastRead)) || 0;
      this.isOpen = false;
      this.staged = []; // uploaded files waiting for the next message: [{file_id, name, content_type, url}]
      this.uploading = 0;
      this.filePolicy = null; // {max_bytes, allowed_types, max_attachments} from GET /webchat/files
    }

    // ------------------------------------------------------------ DOM

    mount() {
      injectStyles();
      const target = this.opts.target ? document.getElementById(this.opts.target) : null;
      if (this.opts.target && !target) {
        console.warn(`[webchat] data-target "${this.opts.target}" not found; using the floating launcher`);
      }
      this.inline = !!target;
      const root = h('div', `gw-chat ${this.inline ? 'gw-chat--inline' : 'gw-chat--floating'}`);
      this.root = root;
      const uid = `gw-chat-${Math.random().toString(36).slice(2, 8)}`;

      const panel = h('div', 'gw-chat__panel', {
        id: `${uid}-panel`,
        role: this.inline ? 'region' : 'dialog',
        'aria-label': this.opts.title,
      });
      this.panel = panel;

      // header
      const header = h('div', 'gw-chat__header');
      const avatar = h('div', 'gw-chat__avatar');
      avatar.appendChild(icon('chat'));
      const heading = h('div', 'gw-chat__heading');
      heading.appendChild(h('div', 'gw-chat__title', { role: 'heading', 'aria-level': '2' }, this.opts.title));
      this.connEl = h('div', 'gw-chat__conn', {
        'data-testid': 'webchat-connection',
        'data-state': 'idle',
        role: 'status',
      });
      this.connEl.hidden = true;
      heading.appendChild(this.connEl);
      header.append(avatar, heading);
      if (!this.inline) {
        const closeBtn = h('button', 'gw-chat__iconbtn', {
          type: 'button',
          'aria-label': 'Close chat',
          title: 'Close chat',
          'data-testid': 'webchat-close',
        });
        closeBtn.appendChild(icon('minimize'));
        closeBtn.addEventListener('click', () => this.close(true));
        header.appendChild(closeBtn);
      }

      // status line
      this.statusEl = h('div', 'gw-chat__status', { 'data-testid': 'webchat-status', 'aria-live': 'polite' });
      this.statusEl.hidden = true;

      // message list
      this.listEl = h('div', 'gw-chat__messages', {
        'data-testid': 'webchat-messages',
        role: 'log',
        'aria-live': 'polite',
        'aria-relevant': 'additions',
        'aria-label': 'Conversation',
        tabindex: '0',
      });
      if (this.opts.greeting) {
        this.listEl.appendChild(h('div', 'gw-chat__greeting', { 'data-testid': 'webchat-greeting' }, this.opts.greeting));
      } else {
        this.emptyEl = h('div', 'gw-chat__empty', null, 'Send us a message and we\u2019ll get right back to you.');
        this.listEl.appendChild(this.emptyEl);
      }

      // typing indicator
      this.typingEl = h('div', 'gw-chat__typing', { 'data-testid': 'webchat-typing', 'aria-live': 'polite' });
      const dots = h('span', 'gw-chat__dots', { 'aria-hidden': 'true' });
      dots.append(h('span'), h('span'), h('span'));
      this.typingTextEl = h('span');
      this.typingEl.append(dots, this.typingTextEl);
      this.typingEl.hidden = true;

      // notice (error frames, session reset)
      this.noticeEl = h('div', 'gw-chat__notice', { 'data-testid': 'webchat-notice', role: 'alert' });
      this.noticeEl.hidden = true;

      // composer
      const composer = h('div', 'gw-chat__composer');
      const field = h('div', 'gw-chat__field');
      const label = h('label', 'gw-chat__sr', { for: `${uid}-input` }, 'Type your message');
      this.inputEl = h('textarea', 'gw-chat__input', {
        id: `${uid}-input`,
        'data-testid': 'webchat-input',
        rows: '1',
        maxlength: String(MAX_TEXT),
        placeholder: 'Type your message\u2026',
        autocomplete: 'off',
        enterkeyhint: 'send',
        'aria-describedby': `${uid}-hint`,
      });
      const hint = h('span', 'gw-chat__sr', { id: `${uid}-hint` }, 'Press Enter to send, Shift+Enter for a new line.');
      this.countEl = h('div', 'gw-chat__count', { 'aria-live': 'polite' });
      this.countEl.hidden = true;
      // files: chosen with a real <input type=file> (keyboard, screen readers and phones' pickers work),
      // uploaded at once, then sent with the next message
      this.stagedEl = h('ul', 'gw-chat__staged', { 'data-testid': 'webchat-staged', 'aria-label': 'Files to send' });
      this.stagedEl.hidden = true;
      this.uploadErrorEl = h('div', 'gw-chat__upload-error', { 'data-testid': 'webchat-upload-error', role: 'alert' });
      this.uploadErrorEl.hidden = true;
      this.fileInput = h('input', null, {
        type: 'file',
        id: `${uid}-file`,
        'data-testid': 'webchat-file-input',
        'aria-label': 'Choose a file to attach',
        tabindex: '-1',
        multiple: '',
      });
      this.fileInput.hidden = true;
      this.attachBtn = h('button', 'gw-chat__attach', {
        type: 'button',
        'data-testid': 'webchat-attach',
        'aria-label': 'Attach a file',
        title: 'Attach a file',
        'aria-controls': `${uid}-file`,
      });
      this.attachBtn.appendChild(icon('clip'));
      this.attachBtn.hidden = true; // shown once the gateway says it takes files
      field.append(this.stagedEl, this.uploadErrorEl, label, this.inputEl, hint, this.countEl);
      this.sendBtn = h('button', 'gw-chat__send', {
        type: 'button',
        'data-testid': 'webchat-send',
        'aria-label': 'Send message',
        title: 'Send',
      });
      this.sendBtn.appendChild(icon('send'));
      this.sendBtn.disabled = true;
      composer.append(this.attachBtn, this.fileInput, field, this.sendBtn);

      panel.append(header, this.statusEl, this.listEl, this.typingEl, this.noticeEl, composer);

      if (this.inline) {
        root.appendChild(panel);
        target.appendChild(root);
      } else {
        this.launcher = h('button', 'gw-chat__launcher', {
          type: 'button',
          'data-testid': 'webchat-launcher',
          'aria-label': `Open chat: ${this.opts.title}`,
          'aria-expanded': 'false',
          'aria-controls': panel.id,
        });
        this.launcherIcon = icon('chat');
        this.launcher.appendChild(this.launcherIcon);
        this.badgeEl = h('span', 'gw-chat__badge', { 'data-testid': 'webchat-badge', 'aria-hidden': 'true' });
        this.badgeEl.hidden = true;
        this.launcher.appendChild(this.badgeEl);
        this.launcher.addEventListener('click', () => (this.isOpen ? this.close(false) : this.open()));
        panel.hidden = true;
        root.append(panel, this.launcher);
        document.body.appendChild(root);
        panel.addEventListener('keydown', (e) => {
          if (e.key === 'Escape') {
            e.preventDefault();
            this.close(true);
          }
        });
      }

      this.inputEl.addEventListener('input', () => this.onInput());
      this.inputEl.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229) return;
        e.preventDefault();
        this.submit();
      });
      this.sendBtn.addEventListener('click', () => this.submit());
      this.attachBtn.addEventListener('click', () => this.fileInput.click());
      this.fileInput.addEventListener('change', () => this.chooseFiles(this.fileInput.files));
      this.loadFilePolicy();

      // Outbox survives reloads: show what was typed but never acknowledged.
      const saved = local.get(KEY.outbox);
      this.outbox = Array.isArray(saved)
        ? saved.filter((m) => m && validId(m.client_msg_id) && typeof m.text === 'string')
        : [];
      for (const item of this.outbox) this.renderPending(item);
      this.session = this.loadSession();

      window.addEventListener('online', () => this.reconnectNow());
      document.addEventListener('visibilitychange', () => {
        if (document.visibilityState === 'visible') this.reconnectNow();
      });

      if (this.inline) {
        this.isOpen = true;
        this.start();
      } else if (perTab.get(KEY.open) === true) {
        this.open(false);
      } else if (this.session || this.outbox.length) {
        this.start(); // an existing conversation: connect so new replies raise the badge
      }
      this.scrollToBottom();
    }

    onInput() {
      const ta = this.inputEl;
      ta.style.height = 'auto';
      ta.style.height = `${Math.min(ta.scrollHeight + 2, 140)}px`;
      const len = ta.value.length;
      // A file on its own can be sent; while one is uploading the message waits for it.
      const empty = ta.value.trim() === '' && this.staged.length === 0;
      this.sendBtn.disabled = empty || len > MAX_TEXT || this.uploading > 0;
      if (len > MAX_TEXT - 500) {
        this.countEl.hidden = false;
        this.countEl.textContent = `${MAX_TEXT - len} characters left`;
      } else {
        this.countEl.hidden = true;
      }
    }

    open(focus = true) {
      if (this.inline || this.isOpen) return;
      this.isOpen = true;
      this.panel.hidden = false;
      this.root.classList.add('gw-chat--open');
      this.launcher.setAttribute('aria-expanded', 'true');
      this.launcher.setAttribute('aria-label', 'Close chat');
      this.launcher.replaceChild((this.launcherIcon = icon('close')), this.launcher.firstChild);
      perTab.set(KEY.open, true);
      this.markRead();
      this.start();
      this.scrollToBottom();
      if (focus) requestAnimationFrame(() => this.inputEl.focus());
    }

    close(returnFocus) {
      if (this.inline || !this.isOpen) return;
      this.isOpen = false;
      this.panel.hidden = true;
      this.root.classList.remove('gw-chat--open');
      this.launcher.setAttribute('aria-expanded', 'false');
      this.launcher.setAttribute('aria-label', `Open chat: ${this.opts.title}`);
      this.launcher.replaceChild((this.launcherIcon = icon('chat')), this.launcher.firstChild);
      perTab.set(KEY.open, false);
      if (returnFocus) this.launcher.focus();
    }

    markRead() {
      this.unread = 0;
      if (this.highestSeq > this.lastRead) {
        this.lastRead = this.highestSeq;
        local.set(KEY.lastRead, this.lastRead);
      }
      this.renderBadge();
    }

    renderBadge() {
      if (!this.badgeEl) return;
      this.badgeEl.hidden = this.unread === 0;
      this.badgeEl.textContent = this.unread > 9 ? '9+' : String(this.unread);
      this.launcher.setAttribute(
        'aria-label',
        this.isOpen ? 'Close chat' : `Open chat: ${this.opts.title}${this.unread ? ` (${this.unread} new)` : ''}`,
      );
    }

    isNearBottom() {
      const l = this.listEl;
      return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
    }

    scrollToBottom() {
      this.listEl.scrollTop = this.listEl.scrollHeight;
    }

    setConn(state) {
      const text = {
        connecting: 'Connecting\u2026',
        online: 'Online',
        reconnecting: 'Reconnecting\u2026',
      }[state];
      this.connEl.setAttribute('data-state', state);
      this.connEl.textContent = text || '';
      this.connEl.hidden = !text;
    }

    showNotice(text, kind = 'error') {
      clearTimeout(this.noticeTimer);
      this.noticeEl.textContent = text;
      this.noticeEl.setAttribute('data-kind', kind);
      this.noticeEl.hidden = false;
      this.noticeTimer = setTimeout(() => {
        this.noticeEl.hidden = true;
      }, NOTICE_MS);
    }

    setStatus(status) {
      const text = STATUS_TEXT[status];
      if (!text) return;
      this.statusEl.setAttribute('data-status', status);
      this.statusEl.textContent = text;
      this.statusEl.hidden = false;
    }

    setTyping(author, active) {
      if (author !== 'ai' && author !== 'agent') return;
      clearTimeout(this.typingTimers[author]);
      this.typing[author] = !!active;
      if (active) this.typingTimers[author] = setTimeout(() => this.setTyping(author, false), TYPING_TIMEOUT_MS);
      const who = this.typing.agent ? this.agentName || 'Agent' : this.typing.ai ? 'Assistant' : '';
      const stick = this.isNearBottom();
      this.typingEl.hidden = !who;
      this.typingTextEl.textContent = who ? `${who} is typing\u2026` : '';
      if (stick) this.scrollToBottom();
    }

    authorLabel(author, agentName) {
      if (author === 'customer') return 'You';
      if (author === 'ai') return 'Assistant';
      if (author === 'agent') return agentName || 'Agent';
      return 'System';
    }

    buildMessage(author, text, agentName) {
      const node = h('div', 'gw-chat__msg', { 'data-testid': 'webchat-message', 'data-author': author });
      const meta = h('div', 'gw-chat__meta');
      meta.appendChild(h('span', 'gw-chat__author', null, this.authorLabel(author, agentName)));
      const time = h('time', 'gw-chat__time');
      meta.appendChild(time);
      const bubble = h('div', 'gw-chat__bubble');
      bubble.appendChild(h('div', 'gw-chat__text', { 'data-testid': 'webchat-message-text' }, text));
      node.append(meta, bubble);
      node._gw = { time, bubble };
      return node;
    }

    setTime(node, iso) {
      const label = formatTime(iso);
      const t = node._gw.time;
      t.textContent = label;
      if (label) {
        t.setAttribute('datetime', iso);
        t.setAttribute('title', new Date(iso).toLocaleString());
      }
    }

    setAttachments(node, attachments) {
      // Replaces any list already shown: a pending message lists its files before the server's copy arrives.
      const shown = node._gw.bubble.querySelector('.gw-chat__files');
      if (shown) shown.remove();
      if (!Array.isArray(attachments) || attachments.length === 0) return;
      const ul = h('ul', 'gw-chat__files', { 'aria-label': 'Attachments' });
      for (const a of attachments) {
        if (!a || typeof a !== 'object') continue;
        const url = safeHttpUrl(a.url);
        const li = h('li');
        const name = typeof a.name === 'string' && a.name ? a.name : 'Attachment';
        const link = url
          ? h('a', 'gw-chat__file', { href: url, target: '_blank', rel: 'noopener noreferrer' })
          : h('span', 'gw-chat__file');
        link.appendChild(icon('clip'));
        link.appendChild(h('span', null, null, name));
        if (typeof a.content_type === 'string') link.setAttribute('title', `${name} (${a.content_type})`);
        li.appendChild(link);
        ul.appendChild(li);
      }
      if (ul.childNodes.length) node._gw.bubble.appendChild(ul);
    }

    setPendingState(node, text, failed) {
      let state = node.querySelector('.gw-chat__state');
      if (text == null) {
        if (state) state.remove();
        node.classList.remove('gw-chat__msg--pending', 'gw-chat__msg--failed');
        return;
      }
      if (!state) {
        state = h('div', 'gw-chat__state');
        node.appendChild(state);
      }
      state.textContent = text;
      node.classList.add('gw-chat__msg--pending');
      node.classList.toggle('gw-chat__msg--failed', !!failed);
    }

    renderPending(item) {
      const node = this.buildMessage('customer', item.text);
      this.setTime(node, item.created_at);
      this.setAttachments(node, item.attachments);
      this.setPendingState(node, 'Sending\u2026');
      node.setAttribute('data-client-msg-id', item.client_msg_id);
      this.pendingEls.set(item.client_msg_id, node);
      this.listEl.appendChild(node); // pending messages always sit after the stored ones
      this.updateEmpty();
      return node;
    }

    updateEmpty() {
      if (this.emptyEl) this.emptyEl.hidden = this.seqEls.size + this.pendingEls.size > 0;
    }

    placeBySeq(node, seq) {
      let ref = null;
      if (seq > this.highestSeq) {
        // common case (live or in-order replay): before the first pending message
        ref = this.listEl.querySelector('.gw-chat__msg--pending');
      } else {
        for (const child of this.listEl.children) {
          if (child === node) continue;
          const s = child.getAttribute('data-seq');
          if (s !== null ? Number(s) > seq : child.classList.contains('gw-chat__msg--pending')) {
            ref = child;
            break;
          }
        }
      }
      if (ref === node) return;
      this.listEl.insertBefore(node, ref);
    }

    handleMessage(f) {
      const seq = Number(f.seq);
      if (!Number.isSafeInteger(seq) || seq < 0) return;
      const author = AUTHORS.includes(f.author) ? f.author : 'system';
      const text = typeof f.text === 'string' ? f.text : '';
      const cid = typeof f.client_msg_id === 'string' ? f.client_msg_id : null;
      const agentName = typeof f.agent_name === 'string' ? f.agent_name.trim() : '';
      if (author === 'agent' && agentName) this.agentName = agentName;
      if (cid) this.acknowledge(cid);

      const pending = cid ? this.pendingEls.get(cid) : null;
      if (this.seqEls.has(seq)) {
        // duplicate (replay overlap, idempotent resend): already shown, maybe since edited
        if (pending) {
          pending.remove();
          this.pendingEls.delete(cid);
        }
        this.applyRevision(this.seqEls.get(seq), this.revisionOf(f));
        return;
      }
      const stick = this.isNearBottom() || author === 'customer';
      let node;
      if (pending) {
        node = pending;
        this.pendingEls.delete(cid);
        this.setPendingState(node, null);
        node.querySelector('[data-testid="webchat-message-text"]').textContent = text;
      } else {
        node = this.buildMessage(author, text, agentName);
        if (cid) node.setAttribute('data-client-msg-id', cid);
      }
      this.setTime(node, f.created_at);
      this.setAttachments(node, f.attachments);
      // A replayed message arrives in its final state; an edit pushed while it was replaying is applied
      // too (applyRevision keeps whichever is newer).
      this.applyRevision(node, this.revisionOf(f));
      this.applyRevision(node, this.earlyRevisions.get(seq));
      this.earlyRevisions.delete(seq);
      node.setAttribute('data-seq', String(seq));
      this.placeBySeq(node, seq);
      this.seqEls.set(seq, node);
      if (seq > this.highestSeq) this.highestSeq = seq;
      this.updateEmpty();

      if (author === 'ai' || author === 'agent') this.setTyping(author, false);
      if (this.isOpen && document.visibilityState !== 'hidden') {
        this.markRead();
      } else if (author !== 'customer' && seq > this.lastRead) {
        this.unread += 1;
        this.renderBadge();
      }
      if (stick) this.scrollToBottom();
    }

    // ------------------------------------------------------------ edits and deletions (agents, from Slack)

    revisionOf(f) {
      const str = (v) => (typeof v === 'string' ? v : '');
      if (f.type === 'message_deleted' || f.deleted === true) return { deleted: true, at: str(f.deleted_at) };
      if (f.type === 'message_edited' || f.edited === true) {
        return { deleted: false, text: str(f.text), at: str(f.edited_at) };
      }
      return null;
    }

    handleRevision(f) {
      const seq = Number(f.seq);
      if (!Number.isSafeInteger(seq) || seq < 0) return;
      const rev = this.revisionOf(f);
      const node = this.seqEls.get(seq);
      if (!node) {
        // The server pushes edits without waiting for a replay in progress: keep it for the message.
        const early = this.earlyRevisions.get(seq);
        if (!early || !early.deleted) this.earlyRevisions.set(seq, rev);
        return;
      }
      const stick = this.isNearBottom();
      this.applyRevision(node, rev);
      if (stick) this.scrollToBottom();
    }

    applyRevision(node, rev) {
      if (!node || !rev || !node._gw) return;
      const g = node._gw;
      if (g.deleted) return; // a deletion is final
      const at = Date.parse(rev.at) || 0;
      if (!rev.deleted && at < (g.editedAt || 0)) return; // an older edit that arrived late
      const textEl = node.querySelector('[data-testid="webchat-message-text"]');
      if (rev.deleted) {
        g.deleted = true;
        node.setAttribute('data-deleted', 'true');
        node.removeAttribute('data-edited');
        // Nothing of the withdrawn message stays: its text, files and the "edited" mark all go.
        for (const child of Array.from(g.bubble.children)) if (child !== textEl) child.remove();
        if (g.editedEl) g.editedEl.remove();
        g.editedEl = null;
        textEl.textContent = 'Message deleted';
        textEl.classList.add('gw-chat__text--deleted');
        return;
      }
      g.editedAt = at;
      textEl.textContent = rev.text;
      node.setAttribute('data-edited', 'true');
      if (!g.editedEl) {
        // Visible text (not only an icon or colour), so screen readers announce it with the new text.
        g.editedEl = h('span', 'gw-chat__edited', { 'data-testid': 'webchat-message-edited' }, 'edited');
        const meta = node.querySelector('.gw-chat__meta');
        if (meta) meta.appendChild(g.editedEl);
      }
      if (at) g.editedEl.setAttribute('title', `Edited ${new Date(at).toLocaleString()}`);
    }

    resetConversationView() {
      for (const node of this.seqEls.values()) node.remove();
      this.seqEls.clear();
      this.earlyRevisions.clear();
      this.highestSeq = 0;
      this.lastRead = 0;
      local.set(KEY.lastRead, 0);
      this.unread = 0;
      this.renderBadge();
      this.setTyping('ai', false);
      this.setTyping('agent', false);
      this.statusEl.hidden = true;
      this.updateEmpty();
    }

    // ------------------------------------------------------------ session + outbox

    loadSession() {
      const s = local.get(KEY.session);
      return s && typeof s.token === 'string' && s.token ? s : null;
    }

    dropSession() {
      local.del(KEY.session);
      this.session = null;
      this.sessionPromise = null;
    }

    ensureSession() {
      if (this.session) return Promise.resolve(this.session);
      if (!this.sessionPromise) {
        // No body and no custom headers: a CORS "simple" request, so no preflight is needed.
        this.sessionPromise = fetch(`${BASE}/webchat/sessions`, {
          method: 'POST',
          credentials: 'omit',
          mode: 'cors',
        })
          .then((r) => {
            if (!r.ok) throw new Error(`POST /webchat/sessions: HTTP ${r.status}`);
            return r.json();
          })
          .then((body) => {
            if (!body || typeof body.token !== 'string' || !body.token) throw new Error('no token in session reply');
            this.session = { token: body.token, conversation_id: String(body.conversation_id || '') };
            local.set(KEY.session, this.session);
            return this.session;
          })
          .finally(() => {
            this.sessionPromise = null;
          });
      }
      return this.sessionPromise;
    }

    saveOutbox() {
      if (this.outbox.length) local.set(KEY.outbox, this.outbox);
      else local.del(KEY.outbox);
    }

    acknowledge(cid) {
      const before = this.outbox.length;
      this.outbox = this.outbox.filter((m) => m.client_msg_id !== cid);
      this.lastSent.delete(cid);
      if (this.outbox.length !== before) this.saveOutbox();
    }

    submit() {
      const raw = this.inputEl.value;
      const text = raw.trim();
      if ((!text && this.staged.length === 0) || this.uploading > 0) return;
      if (raw.length > MAX_TEXT) {
        this.showNotice(ERROR_TEXT.text_too_long);
        return;
      }
      const item = { client_msg_id: uuid(), text, created_at: new Date().toISOString() };
      if (this.staged.length) item.attachments = this.staged.slice();
      this.outbox.push(item);
      this.saveOutbox();
      this.renderPending(item);
      this.scrollToBottom();
      this.inputEl.value = '';
      this.clearStaged();
      this.onInput();
      this.inputEl.focus();
      if (this.isSocketOpen()) this.sendItem(item);
      else if (this.started) this.reconnectNow();
      else this.start();
    }

    isSocketOpen() {
      return !!this.ws && this.ws.readyState === WebSocket.OPEN;
    }

    sendItem(item) {
      try {
        const frame = { type: 'message', text: item.text, client_msg_id: item.client_msg_id };
        if (Array.isArray(item.attachments) && item.attachments.length) {
          frame.attachments = item.attachments.map((a) => ({ file_id: a.file_id }));
        }
        this.ws.send(JSON.stringify(frame));
        this.lastSent.set(item.client_msg_id, Date.now());
      } catch (_) {
        /* the close handler reconnects and the outbox is flushed again */
      }
    }

    flushOutbox() {
      if (!this.isSocketOpen()) return;
      for (const item of this.outbox) this.sendItem(item);
    }

    resendStale() {
      // Safety net for a frame lost on a half-dead connection: resending is idempotent.
      if (!this.isSocketOpen() || !this.outbox.length || this.resends >= MAX_RESENDS_PER_CONNECTION) return;
      const now = Date.now();
      const stale = this.outbox.filter((m) => now - (this.lastSent.get(m.client_msg_id) || 0) > RESEND_AFTER_MS);
      if (!stale.length) return;
      this.resends += 1;
      for (const item of stale) this.sendItem(item);
    }

    // ------------------------------------------------------------ files

    loadFilePolicy(attempt = 0) {
      // A plain GET (no credentials, no custom headers): no CORS preflight.
      fetch(`${BASE}/webchat/files`, { credentials: 'omit', mode: 'cors' })
        .then((r) => (r.ok ? r.json() : r.status === 404 ? null : Promise.reject(new Error(`HTTP ${r.status}`))))
        .then((policy) => {
          if (!policy || !Array.isArray(policy.allowed_types)) return; // this gateway takes no files
          this.filePolicy = {
            max_bytes: Number(policy.max_bytes) || 0,
            allowed_types: policy.allowed_types.filter((t) => typeof t === 'string'),
            max_attachments: Number(policy.max_attachments) || 5,
          };
          this.fileInput.setAttribute('accept', this.filePolicy.allowed_types.join(','));
          this.attachBtn.hidden = false;
          this.renderStaged();
        })
        .catch(() => {
          if (attempt < 3) setTimeout(() => this.loadFilePolicy(attempt + 1), 5000 * (attempt + 1));
        });
    }

    chooseFiles(list) {
      const files = Array.from(list || []);
      this.fileInput.value = ''; // choosing the same file again must fire `change` again
      this.showUploadError('');
      const max = this.filePolicy ? this.filePolicy.max_attachments : 5;
      for (const file of files) {
        if (this.staged.length + this.uploading >= max) {
          this.showUploadError(`You can attach up to ${max} files to one message.`);
          break;
        }
        const limit = this.filePolicy ? this.filePolicy.max_bytes : 0;
        if (file.size === 0) {
          this.showUploadError(`${file.name} is empty.`);
        } else if (limit && file.size > limit) {
          this.showUploadError(`${file.name} is too large: files can be at most ${humanSize(limit)}.`);
        } else {
          this.uploadFile(file);
        }
      }
    }

    async uploadFile(file) {
      const chip = this.addChip(file.name, null);
      this.uploading += 1;
      this.renderStaged();
      try {
        const session = await this.ensureSession();
        const form = new FormData();
        form.append('file', file, file.name);
        let r;
        try {
          r = await fetch(`${BASE}/webchat/files`, {
            method: 'POST',
            body: form,
            headers: { Authorization: `Bearer ${session.token}` },
            credentials: 'omit',
            mode: 'cors',
          });
        } catch (_) {
          throw new Error(`${file.name} could not be uploaded. Check your connection and try again.`);
        }
        let body = null;
        try {
          body = await r.json();
        } catch (_) {
          /* not JSON: described by status below */
        }
        if (!r.ok || !body || typeof body.file_id !== 'string') {
          // The gateway's reasons are written for people ("photo.exe: type … is not accepted").
          const reason = body && typeof body.message === 'string' && body.message ? body.message : '';
          const fallback = {
            401: 'Your chat session has expired. Reload the page and try again.',
            413: `${file.name} is too large.`,
            415: `${file.name} can't be sent: this kind of file isn't accepted.`,
            429: "You're sending files too quickly. Try again in a minute.",
          }[r.status];
          const own = r.status === 401 || r.status === 429; // ours are clearer than the protocol's wording
          throw new Error((own ? fallback : reason || fallback) || `${file.name} could not be uploaded.`);
        }
        const entry = {
          file_id: body.file_id,
          name: typeof body.name === 'string' ? body.name : file.name,
          content_type: typeof body.content_type === 'string' ? body.content_type : '',
          url: typeof body.url === 'string' ? body.url : '',
        };
        this.staged.push(entry);
        this.addChip(entry.name, entry, chip);
      } catch (err) {
        chip.remove();
        this.showUploadError((err && err.message) || `${file.name} could not be uploaded.`);
      } finally {
        this.uploading -= 1;
        this.renderStaged();
      }
    }

    addChip(name, entry, replace) {
      const li = h('li', 'gw-chat__chip', {
        'data-testid': 'webchat-staged-file',
        'data-state': entry ? 'ready' : 'uploading',
      });
      li.appendChild(h('span', 'gw-chat__chipname', { title: name }, name));
      if (entry) {
        const x = h('button', 'gw-chat__chipx', { type: 'button', 'aria-label': `Remove ${name}`, title: 'Remove' });
        x.appendChild(icon('close'));
        x.addEventListener('click', () => {
          this.staged = this.staged.filter((s) => s !== entry);
          li.remove();
          this.renderStaged();
          this.inputEl.focus();
        });
        li.appendChild(x);
      } else {
        li.appendChild(h('span', 'gw-chat__sr', null, ' (uploading)'));
        li.setAttribute('aria-busy', 'true');
      }
      if (replace && replace.parentNode) replace.replaceWith(li);
      else this.stagedEl.appendChild(li);
      return li;
    }

    clearStaged() {
      this.staged = [];
      this.stagedEl.textContent = '';
      this.showUploadError('');
      this.renderStaged();
    }

    renderStaged() {
      this.stagedEl.hidden = this.stagedEl.childNodes.length === 0;
      const max = this.filePolicy ? this.filePolicy.max_attachments : 5;
      this.attachBtn.disabled = this.staged.length + this.uploading >= max;
      this.onInput();
    }

    showUploadError(text) {
      this.uploadErrorEl.textContent = text;
      this.uploadErrorEl.hidden = !text;
    }

    // ------------------------------------------------------------ connection

    start() {
      if (this.started) return;
      this.started = true;
      this.resendTimer = setInterval(() => this.resendStale(), 3000);
      this.connect();
    }

    async connect() {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      if (this.ws || this.connecting) return;
      this.connecting = true;
      this.setConn(this.everOnline || this.attempt > 0 ? 'reconnecting' : 'connecting');
      let session;
      try {
        session = await this.ensureSession();
      } catch (err) {
        this.connecting = false;
        console.warn('[webchat] could not start a chat session:', err);
        this.scheduleReconnect();
        return;
      }
      const gen = ++this.gen;
      const wsBase = BASE.replace(/^http/, 'ws');
      const url = `${wsBase}/webchat/ws?token=${encodeURIComponent(session.token)}&after_seq=${this.highestSeq}`;
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (err) {
        this.connecting = false;
        this.scheduleReconnect();
        return;
      }
      this.ws = ws;
      this.connecting = false;
      ws.onopen = () => {
        if (gen !== this.gen) return;
        this.everOnline = true;
        this.resends = 0;
        this.lastSent.clear();
        this.setConn('online');
        this.flushOutbox();
      };
      ws.onmessage = (ev) => {
        if (gen !== this.gen) return;
        this.attempt = 0; // the server is talking to us: the next drop starts a fresh backoff
        this.badRequests = 0;
        this.quickResets = 0;
        let frame;
        try {
          frame = JSON.parse(ev.data);
        } catch (_) {
          return;
        }
        if (frame && typeof frame === 'object') this.onFrame(frame);
      };
      ws.onerror = () => {
        /* always followed by close */
      };
      ws.onclose = (ev) => {
        if (gen !== this.gen) return;
        this.ws = null;
        this.onClose(ev.code);
      };
    }

    onFrame(f) {
      switch (f.type) {
        case 'message':
          this.handleMessage(f);
          break;
        case 'message_edited':
        case 'message_deleted':
          this.handleRevision(f);
          break;
        case 'status':
          this.setStatus(f.status);
          break;
        case 'typing':
          this.setTyping(f.author, f.active === true);
          break;
        case 'error':
          this.handleError(f);
          break;
        default:
          break; // unknown frame types are ignored (forward compatible)
      }
    }

    handleError(f) {
      const code = typeof f.code === 'string' ? f.code : '';
      const serverText = typeof f.message === 'string' ? f.message : '';
      this.showNotice(ERROR_TEXT[code] || serverText || 'Something went wrong.');
      const cid = typeof f.client_msg_id === 'string' ? f.client_msg_id : null;
      if (cid && FINAL_ERRORS.includes(code)) {
        // the server will never accept this one: stop resending (also after a reload: acknowledge()
        // removes it from the stored outbox), show it as not delivered
        this.acknowledge(cid);
        const node = this.pendingEls.get(cid);
        if (node) this.setPendingState(node, 'Not delivered', true);
      } else if (code === 'rate_limited') {
        setTimeout(() => this.flushOutbox(), 4000 + Math.random() * 2000);
      }
    }

    onClose(code) {
      this.setTyping('ai', false);
      this.setTyping('agent', false);
      if (code === 4401) {
        // token invalid or expired: start over with a new session and conversation
        this.dropSession();
        this.resetConversationView();
        this.showNotice('Your previous chat session expired, so we started a new conversation.', 'info');
        this.quickResets += 1;
        if (this.quickResets <= 1) {
          this.setConn('reconnecting');
          this.connect();
          return;
        }
      } else if (code === CLOSE_REPLACED) {
        // Reconnecting at once would close the other tab's socket, which would do the same: wait until
        // this tab is looked at again (visibilitychange), goes online, or sends a message.
        this.replaced = true;
        this.setConn('reconnecting');
        return;
      } else if (code === 4400) {
        this.badRequests += 1;
        if (this.badRequests >= 3) {
          this.badRequests = 0;
          this.dropSession();
          this.resetConversationView();
        }
      }
      this.scheduleReconnect();
    }

    scheduleReconnect() {
      clearTimeout(this.reconnectTimer);
      const cap = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(this.attempt, 10));
      const delay = cap / 2 + Math.random() * (cap / 2); // "equal jitter"
      this.attempt += 1;
      this.setConn('reconnecting');
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    }

    reconnectNow() {
      if (this.started && !this.ws && !this.connecting && (this.reconnectTimer || this.replaced)) {
        this.replaced = false;
        this.connect();
      }
    }
  }

  function boot() {
    const widget = new ChatWidget(OPTIONS);
    widget.mount();
    // A tiny page API, e.g. for a "Contact us" link: GatewayChat.open()
    window.GatewayChat = {
      open: () => widget.open(),
      close: () => widget.close(false),
    };
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot, { once: true });
  else boot();
})();
