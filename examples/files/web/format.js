// Small formatting helpers shared by the page's parts.

/** "1.2 KiB" for a byte count (proto3 JSON sends int64 as a string; absent means 0). */
export function formatSize(value) {
  const bytes = Number(value || 0);
  const units = ["B", "KiB", "MiB", "GiB"];
  let size = bytes;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${size.toFixed(1)} ${units[unit]}`;
}

/** Local time of day for an RFC 3339 timestamp; empty when there is none. */
export function formatTime(timestamp) {
  if (!timestamp) return "";
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? timestamp : date.toLocaleTimeString();
}

/** Base64 of a file's bytes, as proto3 JSON wants a `bytes` field. */
export async function base64Of(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  const step = 0x8000;
  for (let start = 0; start < bytes.length; start += step) {
    binary += String.fromCharCode(...bytes.subarray(start, start + step));
  }
  return btoa(binary);
}

/** Show `error` (an RpcError or any Error) in a status region; null clears it. */
export function showError(region, error) {
  region.textContent = error ? error.message : "";
  region.hidden = !error;
}
