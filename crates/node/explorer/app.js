// The proctor block explorer: reads the node's JSON-RPC over HTTP and follows
// new heads over its WebSocket subscription. Every value from the chain is
// put into the page as text, never as HTML.

let nextId = 1;
async function rpc(method, params = []) {
  const res = await fetch("/", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${body.error.message} (code ${body.error.code})`);
  return body.result;
}

// el("a", {href: "#/"}, "text", child...) -> an element; strings become text.
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    e.append(c instanceof Node ? c : document.createTextNode(c === undefined || c === null ? "" : String(c)));
  }
  return e;
}
const short = (h) => (typeof h === "string" && h.length > 16 ? `${h.slice(0, 8)}…${h.slice(-6)}` : String(h ?? ""));
const link = (href, text, attrs = {}) => el("a", { href, ...attrs }, text);
const hashLink = (kind, h) => link(`#/${kind}/${h}`, short(h), { class: "hash", title: h });
const table = (head, rows) => el("table", {}, el("tr", {}, head.map((h) => el("th", {}, h))), rows);
const fields = (pairs) => el("dl", {}, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
const age = (ms) => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
};
const main = () => document.getElementById("main");
function show(...nodes) {
  main().replaceChildren(...nodes);
}

let info = null;
let head = null;

function setHead(h) {
  head = h;
  const height = document.getElementById("height");
  height.textContent = h.height;
  height.dataset.height = h.height;
  if (info) document.getElementById("final").textContent = Math.max(0, h.height - info.finality_depth);
}

function blockRow(b) {
  const p = b.pouw;
  return el("tr", { "data-height": b.height },
    el("td", {}, link(`#/block/${b.height}`, b.height)),
    el("td", {}, hashLink("block", b.hash)),
    el("td", {}, age(b.timestamp)),
    el("td", {}, b.transactions.length),
    el("td", { class: "enclave", "data-enclave": p ? p.enclave : "" }, p ? hashLink("enclave", p.enclave) : "genesis"),
    el("td", {}, p ? p.instructions.toLocaleString("en") : ""),
    el("td", {}, p ? el("span", { class: "hash", title: p.module }, short(p.module)) : ""));
}

async function home() {
  const top = head.height;
  const heights = [];
  for (let h = top; h >= 0 && heights.length < 15; h--) heights.push(h);
  const blocks = await Promise.all(heights.map((h) => rpc("proctor_block", [String(h)])));
  const jobs = await rpc("proctor_openJobs");
  const enclaves = [...new Set(blocks.filter((b) => b.pouw).map((b) => b.pouw.enclave))];
  const records = await Promise.all(enclaves.map((e) => rpc("proctor_enclave", [e]).catch(() => null)));
  show(
    el("h2", {}, "Latest blocks"),
    table(["height", "hash", "time", "txs", "won by enclave", "instructions", "module"], blocks.map(blockRow)),
    el("h2", {}, `Open jobs (${jobs.length})`),
    jobs.length
      ? table(["job", "state", "requester", "replicas", "workers", "fuel"], jobs.map((j) => el("tr", {},
          el("td", {}, link(`#/job/${j.id}`, j.id)),
          el("td", { class: "state" }, j.state),
          el("td", {}, link(`#/account/${j.requester}`, short(j.requester))),
          el("td", {}, j.spec.replicas),
          el("td", {}, j.assignments.map((a) => hashLink("enclave", a.worker)).flatMap((a, i) => (i ? [", ", a] : [a]))),
          el("td", {}, j.spec.fuel.toLocaleString("en")))))
      : el("p", {}, "No open jobs."),
    el("h2", {}, "Enclaves mining lately"),
    table(["enclave", "operator", "measurement", "expires at", "stake"], records.filter(Boolean).map((e) => el("tr", {},
      el("td", {}, hashLink("enclave", e.identity)),
      el("td", {}, link(`#/account/${e.operator}`, short(e.operator))),
      el("td", {}, el("span", { class: "hash", title: e.measurement }, short(e.measurement))),
      el("td", {}, e.expires_at),
      el("td", {}, e.stake)))),
  );
}

async function block(id) {
  const b = await rpc("proctor_block", [id]);
  const p = b.pouw;
  show(
    el("h2", {}, `Block ${b.height}`),
    fields([
      ["hash", el("code", {}, b.hash)],
      ["parent", b.height > 0 ? link(`#/block/${b.parent}`, b.parent, { class: "hash" }) : "none"],
      ["time", new Date(b.timestamp).toISOString()],
      ["miner", link(`#/account/${b.miner}`, b.miner)],
      ["difficulty", b.difficulty],
      ["state root", el("code", {}, b.state_root)],
      ["transactions root", el("code", {}, b.tx_root)],
    ]),
    el("h2", {}, "PoUW proof"),
    p ? fields([
      ["enclave", link(`#/enclave/${p.enclave}`, p.enclave, { class: "hash enclave", "data-enclave": p.enclave })],
      ["module", el("code", {}, p.module)],
      ["instructions", p.instructions.toLocaleString("en")],
      ["slice", p.slice],
      ["counter", p.counter],
    ]) : el("p", {}, "The genesis block has no proof."),
    el("h2", {}, `Transactions (${b.transactions.length})`),
    b.transactions.length ? el("ul", {}, b.transactions.map((t) => el("li", {}, hashLink("tx", t)))) : el("p", {}, "None."),
  );
}

async function tx(hash) {
  const t = await rpc("proctor_transaction", [hash]);
  show(el("h2", {}, "Transaction"), fields([
    ["hash", el("code", {}, t.hash)],
    ["status", t.status],
    ...(t.block ? [["block", link(`#/block/${t.block}`, `${t.height} (${short(t.block)})`)], ["fee", t.fee]] : []),
    ...(t.reason ? [["dropped", `${t.reason} (code ${t.code})`]] : []),
  ]), el("h2", {}, "Events"), el("pre", {}, JSON.stringify(t.events ?? [], null, 2)));
}

async function account(addr) {
  const a = await rpc("proctor_account", [addr]);
  const page = await rpc("proctor_jobs", [addr, 20, null]);
  show(el("h2", {}, "Account"), fields([
    ["address", el("code", {}, a.address)],
    ["balance", a.balance],
    ["nonce", a.nonce],
  ]), el("h2", {}, "Jobs"), page.jobs.length
    ? table(["job", "state", "paid", "refund"], page.jobs.map((j) => el("tr", {},
        el("td", {}, link(`#/job/${j.id}`, j.id)), el("td", {}, j.state), el("td", {}, j.paid), el("td", {}, j.refund))))
    : el("p", {}, "None."));
}

async function job(id) {
  const j = await rpc("proctor_job", [Number(id)]);
  show(el("h2", {}, `Job ${j.id}`), fields([
    ["state", j.state + (j.refusal ? ` (${j.refusal})` : "")],
    ["requester", link(`#/account/${j.requester}`, j.requester)],
    ["module", el("code", {}, j.spec.module)],
    ["input (encrypted, hash)", el("code", {}, j.spec.input)],
    ["fuel", j.spec.fuel],
    ["replicas", j.spec.replicas],
    ["escrow", j.escrow],
    ["paid", j.paid],
    ["refund", j.refund],
    ["output (encrypted, hash)", j.output ? el("code", {}, j.output) : "none yet"],
  ]), el("h2", {}, "Workers"), table(["enclave", "price", "assigned at", "key posted", "reported"],
    j.assignments.map((a) => el("tr", {},
      el("td", {}, hashLink("enclave", a.worker)),
      el("td", {}, a.price),
      el("td", {}, a.assigned_at),
      el("td", {}, a.key ? "yes" : "no"),
      el("td", {}, a.report ? `${a.report.instructions} instructions` : "no")))));
}

async function enclave(id) {
  const e = await rpc("proctor_enclave", [id]);
  if (!e) throw new Error(`enclave ${id} is not registered`);
  const o = await rpc("proctor_offer", [id]);
  show(el("h2", {}, "Enclave"), fields([
    ["identity", el("code", { class: "enclave", "data-enclave": e.identity }, e.identity)],
    ["operator", link(`#/account/${e.operator}`, e.operator)],
    ["measurement", el("code", {}, e.measurement)],
    ["registered at", e.registered_at],
    ["expires at", e.expires_at],
    ["stake", e.stake],
    ["unbonding until", e.unbonding_until ?? "bonded"],
  ]), el("h2", {}, "Market offer"), o ? fields([
    ["price per instruction", o.price],
    ["memory pages", o.memory_pages],
    ["fuel", o.fuel],
    ["speed (instructions/s)", o.speed],
  ]) : el("p", {}, "No offer."));
}

const routes = { block, tx, account, job, enclave };

async function route() {
  const [, kind, arg] = location.hash.split("/");
  try {
    if (kind && routes[kind]) await routes[kind](decodeURIComponent(arg ?? ""));
    else await home();
  } catch (e) {
    show(el("p", { class: "error" }, e.message));
  }
}

function search(q) {
  q = q.trim();
  if (/^\d+$/.test(q)) return `#/block/${q}`;
  if (/^[0-9a-f]{64}$/i.test(q)) return `#/block/${q}`;
  if (/^job\s*\d+$/i.test(q)) return `#/job/${q.replace(/\D/g, "")}`;
  return `#/account/${q}`;
}

function follow() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`);
  const live = document.getElementById("live");
  ws.onopen = () => {
    ws.send(JSON.stringify({ jsonrpc: "2.0", id: 0, method: "proctor_subscribeNewHeads", params: [] }));
    live.textContent = "live";
    live.className = "on";
  };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.method === "proctor_newHead") {
      setHead(msg.params.result);
      if (!location.hash || location.hash === "#/") route();
    }
  };
  ws.onclose = () => {
    live.textContent = "offline";
    live.className = "off";
    setTimeout(follow, 3000);
  };
}

async function start() {
  info = await rpc("proctor_chainInfo");
  document.getElementById("chain").textContent = info.chain_id;
  setHead(await rpc("proctor_head"));
  document.getElementById("search").addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = search(new FormData(e.target).get("q"));
  });
  window.addEventListener("hashchange", route);
  await route();
  follow();
}

start().catch((e) => show(el("p", { class: "error" }, `cannot reach the node: ${e.message}`)));
