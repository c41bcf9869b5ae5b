// The playground page: simulated WeChat group chats with the bot, over one websocket.
// User text only ever reaches the page through textContent (never innerHTML).
"use strict";

(() => {
  const QUOTE_LINE = "- - - - - - - - - - - - - - -";
  const MENTION = /@([^\s@\u2005]{1,32})(?=[\u2005 ]|$)/gu;
  const COLORS = ["#f29b38", "#5b8ff9", "#e8684a", "#6dc8ec", "#9270ca", "#ff9d4d", "#269a99",
                  "#ff99c3", "#5d7092", "#d4a017"];

  const ui = {
    ws: null,
    retry: 0,
    botName: "团购助手",
    privateName: "私聊机器人",
    rooms: new Map(),      // room name -> room view
    leaders: new Map(),    // member name -> leader toggle
    member: document.getElementById("member"),
    leader: document.getElementById("leader"),
    conn: document.getElementById("conn"),
    panel: document.getElementById("panel"),
    unread: document.getElementById("unread"),
    toastTimer: 0,
  };

  // ---- small DOM helpers -----------------------------------------------------------------

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function colorOf(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return COLORS[h % COLORS.length];
  }

  function toast(text) {
    const box = document.getElementById("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(ui.toastTimer);
    ui.toastTimer = setTimeout(() => { box.hidden = true; }, 3500);
  }

  // Text with @mentions highlighted, as text nodes and spans.
  function richText(parent, text) {
    let last = 0;
    for (const m of text.matchAll(MENTION)) {
      if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
      parent.append(el("span", "at", m[0]));
      last = m.index + m[0].length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  // A quote as WeChat shows it under a message: the first lines only.
  function shorten(text, lines = 2, chars = 60) {
    const all = text.split("\n");
    let out = all.slice(0, lines).join("\n");
    if (out.length > chars) out = out.slice(0, chars);
    return out.length < text.length ? `${out}…` : out;
  }

  // ---- identity --------------------------------------------------------------------------

  function currentName() {
    return ui.member.value.trim();
  }

  function store() {
    try {
      localStorage.setItem("tuangou.member", ui.member.value);
      localStorage.setItem("tuangou.leaders", JSON.stringify([...ui.leaders]));
    } catch (_) { /* private mode: nothing remembered */ }
  }

  function restore() {
    try {
      const leaders = JSON.parse(localStorage.getItem("tuangou.leaders") || "[]");
      for (const [name, on] of leaders) ui.leaders.set(String(name), Boolean(on));
      return localStorage.getItem("tuangou.member");
    } catch (_) {
      return null;
    }
  }

  function identityChanged() {
    const name = currentName();
    ui.leader.checked = Boolean(ui.leaders.get(name));
    for (const chip of document.querySelectorAll("#presets .chip")) {
      chip.classList.toggle("active", chip.dataset.name === name);
    }
    for (const msg of document.querySelectorAll(".msg")) {
      msg.classList.toggle("mine", msg.dataset.bot !== "1" && msg.dataset.sender === name);
    }
    store();
  }

  function setIdentity(name) {
    ui.member.value = name;
    identityChanged();
  }

  ui.member.addEventListener("input", identityChanged);
  ui.leader.addEventListener("change", () => {
    const name = currentName();
    if (name) ui.leaders.set(name, ui.leader.checked);
    store();
  });

  function showPresets(members) {
    const box = document.getElementById("presets");
    const list = document.getElementById("member-list");
    box.replaceChildren();
    list.replaceChildren();
    for (const m of members) {
      if (!ui.leaders.has(m.name)) ui.leaders.set(m.name, Boolean(m.leader));
      const chip = el("button", "chip", m.name);
      chip.type = "button";
      chip.dataset.name = m.name;
      chip.title = m.leader ? "团长" : "邻居";
      if (m.leader) chip.append(el("span", "chip-tag", "团长"));
      chip.addEventListener("click", () => setIdentity(m.name));
      box.append(chip);
      const opt = document.createElement("option");
      opt.value = m.name;
      list.append(opt);
    }
  }

  // ---- rooms -----------------------------------------------------------------------------

  function makeRoom(name, isPrivate) {
    const root = el("section", isPrivate ? "room private-room" : "room");
    root.dataset.room = name;
    const head = el("header", "room-head");
    head.append(el("h2", null, isPrivate ? `与「${ui.botName}」私聊` : name));
    head.append(el("span", "room-sub", isPrivate ? "任何人都可以私聊查单" : "群聊"));
    const list = el("div", "messages");
    list.setAttribute("role", "log");
    list.setAttribute("aria-live", "polite");
    const composer = el("div", "composer");
    const quoteBox = el("div", "quote-preview");
    quoteBox.hidden = true;
    const quoteText = el("span", "quote-text");
    const quoteCancel = el("button", "quote-cancel", "✕");
    quoteCancel.type = "button";
    quoteCancel.title = "取消引用";
    quoteBox.append(quoteText, quoteCancel);
    const row = el("div", "input-row");
    const textarea = el("textarea");
    textarea.rows = 2;
    textarea.maxLength = 4000;
    textarea.placeholder = isPrivate ? "私聊机器人，如「我的订单」"
                                     : "说点什么…（Enter 发送，Shift+Enter 换行）";
    const button = el("button", "send", "发送");
    button.type = "button";
    row.append(textarea, button);
    composer.append(quoteBox, row);
    root.append(head, list, composer);

    const room = { name, isPrivate, root, list, textarea, quoteBox, quoteText, quote: null };
    quoteCancel.addEventListener("click", () => setQuote(room, null));
    button.addEventListener("click", () => send(room));
    textarea.addEventListener("keydown", (ev) => {
      if (ev.isComposing || ev.keyCode === 229) return;  // the IME is still composing
      if (ev.key === "Enter" && !ev.shiftKey) {
        ev.preventDefault();
        send(room);
      } else if (ev.key === "Escape") {
        setQuote(room, null);
      }
    });
    ui.rooms.set(name, room);
    const host = isPrivate ? document.getElementById("private") : document.getElementById("rooms");
    host.append(root);
    return room;
  }

  function roomOf(name) {
    return ui.rooms.get(name) || makeRoom(name, name === ui.privateName);
  }

  function setQuote(room, quote) {
    room.quote = quote;
    room.quoteBox.hidden = !quote;
    room.quoteText.textContent = quote ? `引用 ${quote.sender}：${quote.text}` : "";
    for (const m of room.list.querySelectorAll(".msg.quoting")) m.classList.remove("quoting");
    if (quote) {
      const picked = room.list.querySelector(`.msg[data-id="${CSS.escape(quote.id)}"]`);
      if (picked) picked.classList.add("quoting");
      room.textarea.focus();
    }
  }

  function insertMention(room, name) {
    const ta = room.textarea;
    const before = ta.value.slice(0, ta.selectionStart);
    const pad = before && !/\s$/u.test(before) ? " " : "";
    ta.setRangeText(`${pad}@${name} `, ta.selectionStart, ta.selectionEnd, "end");
    ta.focus();
  }

  function addMessage(m) {
    const room = roomOf(m.room);
    const list = room.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    const name = currentName();
    const msg = el("div", "msg");
    msg.dataset.id = m.id;
    msg.dataset.sender = m.sender;
    msg.dataset.bot = m.bot ? "1" : "0";
    if (m.bot) msg.classList.add("bot");
    if (!m.bot && m.sender === name) msg.classList.add("mine");

    const avatar = el("div", "avatar", m.bot ? "🤖" : [...m.sender][0] || "?");
    avatar.style.background = m.bot ? "#07c160" : colorOf(m.sender);
    avatar.title = `@${m.sender}`;
    avatar.addEventListener("click", () => insertMention(room, m.sender));

    const content = el("div", "content");
    const meta = el("div", "meta");
    meta.append(el("span", "name", m.sender));
    if (m.bot) meta.append(el("span", "tag bot-tag", "机器人"));
    else if (m.leader) meta.append(el("span", "tag leader-tag", "团长"));
    if (m.to) meta.append(el("span", "to", `→ ${m.to}`));
    meta.append(el("span", "time", m.time));
    const bubble = el("div", "bubble");
    richText(bubble, m.body);
    bubble.title = "点击引用这条消息";
    bubble.addEventListener("click", () => {
      if (window.getSelection && String(window.getSelection()).length) return;  // selecting text
      setQuote(room, { id: m.id, sender: m.sender, text: m.body });
    });
    content.append(meta, bubble);
    if (m.quote) {
      const q = el("div", "quote");
      q.append(el("span", "quote-from", `${m.quote.sender}：`));
      richText(q, shorten(m.quote.text));
      content.append(q);
    }
    msg.append(avatar, content);
    list.append(msg);
    if (atBottom || msg.classList.contains("mine") || !room.seen) list.scrollTop = list.scrollHeight;
    if (room.isPrivate && document.getElementById("private").hidden) {
      const n = Number(ui.unread.textContent || "0") + 1;
      ui.unread.textContent = String(n);
      ui.unread.hidden = false;
    }
  }

  function send(room) {
    const name = currentName();
    if (!name) {
      toast("请先在上方「我是」里填写群成员名字");
      ui.member.focus();
      return;
    }
    let text = room.textarea.value.trim();
    if (!text) return;
    if (!ui.ws || ui.ws.readyState !== WebSocket.OPEN) {
      toast("还没连上服务器，请稍候再发");
      return;
    }
    if (room.quote) text = `「${room.quote.sender}：${room.quote.text}」\n${QUOTE_LINE}\n${text}`;
    ui.ws.send(JSON.stringify({ type: "say", room: room.name, name, leader: ui.leader.checked, text }));
    room.textarea.value = "";
    setQuote(room, null);
    room.textarea.focus();
  }

  // ---- the totals panel ------------------------------------------------------------------

  function cell(row, text, cls) {
    const td = el("td", cls, text);
    row.append(td);
    return td;
  }

  function table(cls, headers) {
    const t = el("table", cls);
    const head = el("tr");
    for (const h of headers) head.append(el("th", null, h));
    t.append(el("thead"), el("tbody"));
    t.tHead.append(head);
    return t;
  }

  function renderPanel(state) {
    const deals = (state && state.deals) || [];
    const nodes = [];
    if (!deals.length) {
      const empty = el("div", "empty");
      empty.append(el("p", "empty-title", "还没有开团"));
      const steps = el("ol");
      steps.append(
        el("li", null, "选「王团长」（勾上“团长”），在群里发：开团 山东富士苹果 39.9元/箱 20箱成团 明晚8点截团"),
        el("li", null, "换成邻居，回复「跟一单」或「我要2箱」"),
        el("li", null, "点一条消息可以引用回复；输入 @名字 可以@人；点头像也能@"),
      );
      empty.append(steps);
      nodes.push(empty);
    }
    for (const d of deals) {
      const card = el("article", "deal");
      card.dataset.deal = String(d.id);
      const head = el("header", "deal-head");
      head.append(el("span", "deal-no", `#${d.id}`), el("strong", "deal-title", d.title));
      head.append(el("span", `status status-${d.status}`, d.status_text));
      card.append(head);
      const meta = [d.room, d.leader ? `团长 ${d.leader}` : null,
                    d.deadline ? `截团 ${d.deadline}` : null, d.threshold ? `${d.threshold}成团` : null];
      card.append(el("div", "deal-meta", meta.filter(Boolean).join(" · ")));
      if (d.items.length > 1) {
        const items = table("items", ["商品", "单价", "数量", "金额"]);
        for (const it of d.items) {
          const tr = el("tr");
          cell(tr, `${it.no}. ${it.name}`);
          cell(tr, it.price ? `¥${it.price}/${it.unit}` : "—", "num");
          cell(tr, `${it.qty}${it.unit}`, "num");
          cell(tr, it.amount ? `¥${it.amount}` : "—", "num");
          items.tBodies[0].append(tr);
        }
        card.append(items);
      } else if (d.items.length === 1 && d.items[0].price) {
        card.append(el("div", "deal-price", `¥${d.items[0].price}/${d.items[0].unit}`));
      }
      if (d.members.length) {
        const orders = table("orders", ["团员", "数量", "金额"]);
        for (const o of d.members) {
          const tr = el("tr");
          const who = cell(tr, o.name, "who");
          if (o.placed_for) who.append(el("span", "for", `（代${o.placed_for}）`));
          if (o.note) who.append(el("span", "note", o.note));
          cell(tr, o.lines, "num");
          cell(tr, o.amount ? `¥${o.amount}` : "—", "num");
          orders.tBodies[0].append(tr);
        }
        card.append(orders);
      } else {
        card.append(el("div", "no-orders", "还没有人下单"));
      }
      const foot = el("footer", "deal-total");
      foot.append(el("span", "total-qty", `合计 ${d.total}`), el("span", "total-people", `${d.people}人`),
                  el("span", "total-amount", `¥${d.total_amount}`));
      card.append(foot);
      nodes.push(card);
    }
    ui.panel.replaceChildren(...nodes);
  }

  // ---- tabs ------------------------------------------------------------------------------

  for (const tab of document.querySelectorAll(".tabs [data-tab]")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tabs [data-tab]")) {
        const on = other === tab;
        other.classList.toggle("active", on);
        other.setAttribute("aria-selected", String(on));
        document.getElementById(other.dataset.tab).hidden = !on;
      }
      if (tab.dataset.tab === "private") {
        ui.unread.hidden = true;
        ui.unread.textContent = "";
        const room = ui.rooms.get(ui.privateName);
        if (room) room.list.scrollTop = room.list.scrollHeight;
      }
    });
  }

  // ---- the websocket ---------------------------------------------------------------------

  function hello(frame) {
    ui.botName = frame.bot_name;
    ui.privateName = frame.private;
    document.getElementById("bot-name").textContent = frame.bot_name;
    showPresets(frame.members);
    for (const room of ui.rooms.values()) room.list.replaceChildren();
    for (const name of frame.rooms) roomOf(name);
    roomOf(frame.private);
    for (const m of frame.history) addMessage(m);
    for (const room of ui.rooms.values()) {
      room.seen = true;
      room.list.scrollTop = room.list.scrollHeight;
    }
    ui.unread.hidden = true;
    ui.unread.textContent = "";
    renderPanel(frame.state);
    if (!currentName()) setIdentity(frame.members.length ? frame.members[0].name : "");
    identityChanged();
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    ui.ws = ws;
    ws.addEventListener("open", () => {
      ui.retry = 0;
      ui.conn.textContent = "已连接";
      ui.conn.className = "conn ok";
    });
    ws.addEventListener("message", (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (frame.type === "hello") hello(frame);
      else if (frame.type === "message") addMessage(frame.message);
      else if (frame.type === "state") renderPanel(frame.state);
      else if (frame.type === "error") toast(`没发出去：${frame.error}`);
    });
    ws.addEventListener("close", () => {
      if (ui.ws !== ws) return;
      ui.conn.textContent = "已断开，正在重连…";
      ui.conn.className = "conn bad";
      const wait = Math.min(5000, 500 * 2 ** ui.retry);
      ui.retry += 1;
      setTimeout(connect, wait);
    });
  }

  const saved = restore();
  if (saved) ui.member.value = saved;
  connect();
})();
