// Live updates: /api/live/ sends a ``watermark`` event whenever replicated figures move.
// Bursts of events (a large load replicates in many batches) become one refresh per pause.

const SETTLE_MS = 400;

export function followLive({ moved, status }) {
  let timer = null;
  let last = null;
  const source = new EventSource("/api/live/");
  source.addEventListener("watermark", (message) => {
    const event = JSON.parse(message.data);
    status(event, true);
    if (last !== null && event.watermark !== last) {
      clearTimeout(timer);
      timer = setTimeout(() => moved(event), SETTLE_MS);
    }
    last = event.watermark;
  });
  // EventSource reconnects by itself; the line says so meanwhile.
  source.addEventListener("error", () => status(null, false));
  return source;
}
