// Server-sent events from a fetch() body; an event may arrive split across any number of reads.
export async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let carry = ""; // a trailing "\r" may be the first half of "\r\n"
  for (;;) {
    const { value, done } = await reader.read();
    let text = carry + decoder.decode(value || new Uint8Array(), { stream: !done });
    carry = "";
    if (!done && text.endsWith("\r")) {
      carry = "\r";
      text = text.slice(0, -1);
    }
    buffer += text.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) yield event;
    }
    if (done) {
      const event = parseEvent(buffer);
      if (event) yield event;
      return;
    }
  }
}

export function parseEvent(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { type, data: data.join("\n") } : null;
}
