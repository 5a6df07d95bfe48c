// "Send later" (contract §12): the time a user picks is wall-clock time where they are; the
// server wants an instant, ISO 8601 with an offset. Kept apart from board.js so the conversion
// is one small, readable place.

function pad(number, width = 2) {
  return String(Math.trunc(Math.abs(number))).padStart(width, "0");
}

/** `YYYY-MM-DDTHH:MM:SS` in the browser's time zone: what a datetime-local input holds. */
export function localInputValue(date) {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/**
 * A datetime-local value (`YYYY-MM-DDTHH:MM` or with `:SS`) read as the browser's local time.
 * Null when empty or malformed. (A date-time string without an offset is local time in JS.)
 */
export function parseLocalInput(value) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value || "")) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/**
 * The instant as ISO 8601 with the browser's own offset, e.g. `2026-12-01T09:00:00+01:00`:
 * the same instant as `toISOString()`, but readable as the time the user picked.
 */
export function isoWithOffset(date) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  return `${localInputValue(date)}${sign}${pad(minutes / 60)}:${pad(minutes % 60)}`;
}
