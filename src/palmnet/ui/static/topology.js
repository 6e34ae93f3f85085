// The topology picture: cytoscape with a force-directed layout (cose); node
// shapes and colours by kind, borders by state; refreshed every 3 s from
// graph.json (positions kept), "gone" when the lab was taken down.
(function () {
  const box = document.getElementById('graph');
  const lab = box.dataset.lab;
  const status = document.getElementById('graph-status');
  const KIND = {
    router: ['round-rectangle', '#17324d'], openwrt: ['hexagon', '#6a1b9a'],
    isp: ['diamond', '#00796b'], host: ['ellipse', '#1565c0'],
  };
  const STATE = { running: '#2e8540', degraded: '#c77c02', stopped: '#c62828', error: '#c62828', gone: '#9e9e9e' };
  const style = [
    { selector: 'node', style: {
        'label': 'data(label)', 'font-size': 12, 'text-valign': 'bottom', 'text-margin-y': 4,
        'color': '#1d2329', 'text-wrap': 'wrap', 'width': 36, 'height': 36, 'border-width': 4,
        'font-weight': 600 } },
    ...Object.entries(KIND).map(([k, [shape, colour]]) => ({ selector: `node[kind="${k}"]`,
        style: { 'shape': shape, 'background-color': colour } })),
    ...Object.entries(STATE).map(([s, colour]) => ({ selector: `node[state="${s}"]`,
        style: { 'border-color': colour } })),
    { selector: 'node[kind="network"]', style: {
        'shape': 'round-rectangle', 'background-color': '#eceff1', 'border-color': '#90a4ae',
        'border-width': 2, 'width': 'label', 'height': 'label', 'padding': 8,
        'text-valign': 'center', 'text-margin-y': 0, 'font-family': 'DejaVu Sans Mono',
        'font-size': 11, 'font-weight': 400 } },
    { selector: 'node[kind="network"][state="failed"]', style: { 'border-color': '#c62828', 'border-width': 3 } },
    { selector: 'edge', style: {
        'width': 2.5, 'line-color': '#78909c', 'label': 'data(label)', 'font-size': 10,
        'color': '#5b6670', 'text-rotation': 'autorotate', 'text-background-color': '#fff',
        'text-background-opacity': 0.85, 'text-background-padding': 2, 'curve-style': 'bezier' } },
    { selector: 'edge[state="down"]', style: { 'line-color': '#c62828', 'line-style': 'dashed', 'width': 4, 'color': '#c62828' } },
    { selector: 'edge[state="impaired"]', style: { 'line-color': '#c77c02', 'line-style': 'dotted', 'width': 4, 'color': '#c77c02' } },
    { selector: 'node[href]', style: { 'cursor': 'pointer' } },
  ];
  const elements = JSON.parse(document.getElementById('elements').textContent);
  // A tree (the usual lab: upstream, router, LAN hosts) is drawn top-down in levels
  // from the most upstream node (an ISP, else the first router), which suits a wide
  // screen; a graph with cycles (a ring of routers) by the force-directed layout.
  const natural = new Intl.Collator('en', { numeric: true });  // w2 before w10
  const nodes = elements.filter((e) => !e.data.source);
  const edges = elements.filter((e) => e.data.source);
  const root = nodes.find((e) => e.data.kind === 'isp') || nodes.find((e) => e.data.kind === 'router')
    || nodes.find((e) => e.data.kind === 'openwrt');
  const tree = edges.length < nodes.length;
  const layout = tree
    ? { name: 'breadthfirst', directed: false, roots: root ? [root.data.id] : undefined,
        spacingFactor: 1.0, padding: 30, avoidOverlap: true, animate: false,
        depthSort: (a, b) => natural.compare(a.data('label'), b.data('label')) }
    : { name: 'cose', animate: false, randomize: true, nodeRepulsion: () => 400000,
        idealEdgeLength: () => 70, edgeElasticity: () => 100, gravity: 60, numIter: 2500,
        nodeOverlap: 20, padding: 30, componentSpacing: 80 };
  const cy = cytoscape({ container: box, elements, style, wheelSensitivity: 0.3,
    maxZoom: 1.8, layout });
  // A tree deeper than the screen is tall (ISP, router, LAN, router, LAN...): turn it to
  // run left to right, so the picture fills the wide box and the labels stay readable.
  const bb = cy.elements().boundingBox();
  if (tree && bb.h / Math.max(bb.w, 1) > box.clientHeight / box.clientWidth) {
    cy.nodes().positions((n) => ({ x: n.position('y') * 1.6, y: n.position('x') }));
    cy.fit(undefined, 30);
  }
  window.palmnetGraph = cy;
  box.dataset.ready = '1';
  cy.on('tap', 'node[href]', (e) => { window.location = e.target.data('href'); });
  async function refresh() {
    try {
      const reply = await fetch(`/lab/${lab}/graph.json`, { credentials: 'same-origin' });
      if (reply.status === 410) {
        status.textContent = 'GONE: this lab is not running any more';
        status.style.color = '#c62828'; box.dataset.gone = '1';
        cy.nodes().data('state', 'gone');
        return;
      }
      const body = await reply.json();
      if (!reply.ok) { status.textContent = body.error || reply.statusText; return; }
      for (const el of body.elements) {
        const found = cy.getElementById(el.data.id);
        if (found.nonempty()) found.data(el.data);
      }
      box.dataset.refreshed = String(Date.now());
      status.textContent = 'live · ' + new Date().toLocaleTimeString();
    } catch (err) { status.textContent = 'no answer from palmnet ui'; }
    setTimeout(refresh, 3000);
  }
  setTimeout(refresh, 3000);
})();
