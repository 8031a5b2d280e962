import { Sparkline } from "./topics-sparkline";
import { age, bytesText, hexDump, sortedChildren, type TopicNode } from "./topics-model";

export interface TreeView {
  now: number;
  selected: string | undefined;
  isOpen(n: TopicNode): boolean;
  toggle(n: TopicNode): void;
  select(n: TopicNode): void;
}

function preview(n: TopicNode): string {
  const last = n.last!;
  if (last.text === undefined) return `binary, ${last.size} bytes`;
  const line = last.text.replace(/\s+/g, " ").trim();
  return line.length > 80 ? `${line.slice(0, 80)}…` : line === "" ? "(empty)" : line;
}

/** One level of the tree and, when open, the levels below it. */
export function TopicRow({ node, view }: { node: TopicNode; view: TreeView }) {
  const kids = node.children.size > 0;
  const open = kids && view.isOpen(node);
  const last = node.last;
  const label = node.name === "" ? "(empty)" : node.name;
  return (
    <li data-testid="topics-node" data-topic={node.path} class={view.selected === node.path ? "topics-selected" : ""}>
      <div class="topics-row">
        {kids ? (
          <button type="button" class="topics-toggle" aria-expanded={open} aria-label={`${open ? "Collapse" : "Expand"} ${node.path}`} onClick={() => view.toggle(node)}>
            {open ? "▾" : "▸"}
          </button>
        ) : (
          <span class="topics-toggle" aria-hidden="true" />
        )}
        <button type="button" class="topics-name" onClick={() => view.select(node)} title={node.path}>
          {label}
        </button>
        <span class="topics-count" data-testid="topics-count" title="messages received in this subtree · topics in it">
          {node.total} msg{kids && ` · ${node.topics} topic${node.topics === 1 ? "" : "s"}`}
        </span>
        {last && (
          <>
            <code class="topics-preview" data-testid="topics-preview">
              {preview(node)}
            </code>
            <span class="topics-badge" data-testid="topics-qos">
              QoS {last.qos}
            </span>
            {last.retain && (
              <span class="topics-badge topics-retained" data-testid="topics-retained">
                retained
              </span>
            )}
            <span class="topics-age" data-testid="topics-age">
              {age(view.now - last.at)} ago
            </span>
            <Sparkline values={node.values} label={node.path} />
          </>
        )}
      </div>
      {open && (
        <ul class="topics-level">
          {sortedChildren(node).map((c) => (
            <TopicRow key={c.name} node={c} view={view} />
          ))}
        </ul>
      )}
    </li>
  );
}

function userProperties(p: Record<string, string | string[]> | undefined): Array<[string, string]> {
  if (!p) return [];
  return Object.entries(p).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x): [string, string] => [k, x]) : [[k, v] as [string, string]]));
}

/** Everything known about the selected topic: its last message in full, MQTT 5 properties. */
export function TopicDetail({ node, now }: { node: TopicNode; now: number }) {
  const last = node.last;
  if (!last) {
    return (
      <section class="topics-detail" data-testid="topics-detail" aria-label="selected topic">
        <h3>
          <code>{node.path}</code>
        </h3>
        <p class="hint">
          No message on this exact topic; {node.total} in its subtree, on {node.topics} topic{node.topics === 1 ? "" : "s"}.
        </p>
      </section>
    );
  }
  const p = last.properties;
  const ups = userProperties(p.userProperties as Record<string, string | string[]> | undefined);
  const correlation = bytesText(p.correlationData as Uint8Array | undefined);
  const cut = last.size > last.payload.byteLength;
  const values = node.values;
  return (
    <section class="topics-detail" data-testid="topics-detail" aria-label="selected topic">
      <h3>
        <code data-testid="topics-detail-topic">{node.path}</code>
      </h3>
      <pre class="topics-payload" data-testid="topics-detail-payload">
        {last.json ?? last.text ?? hexDump(last.payload)}
      </pre>
      {cut && <p class="hint">Showing the first {last.payload.byteLength} of {last.size} bytes.</p>}
      {values.length >= 2 && (
        <p class="topics-bigspark">
          <Sparkline values={values} width={280} height={56} label={node.path} />
          <span class="hint">
            last {values.length} values: min {Math.min(...values)}, max {Math.max(...values)}
          </span>
        </p>
      )}
      <table class="topics-props">
        <tbody>
          <tr>
            <th scope="row">Format</th>
            <td data-testid="topics-detail-format">{last.json !== undefined ? "JSON" : last.text !== undefined ? "text" : "binary"}, {last.size} byte{last.size === 1 ? "" : "s"}</td>
          </tr>
          <tr>
            <th scope="row">QoS</th>
            <td>{last.qos}</td>
          </tr>
          <tr>
            <th scope="row">Retained</th>
            <td data-testid="topics-detail-retain">{last.retain ? "yes" : "no"}</td>
          </tr>
          <tr>
            <th scope="row">Received</th>
            <td>
              {age(now - last.at)} ago ({new Date(last.at).toLocaleTimeString()})
            </td>
          </tr>
          <tr>
            <th scope="row">Messages</th>
            <td data-testid="topics-detail-count">{node.count}</td>
          </tr>
          {p.contentType !== undefined && (
            <tr>
              <th scope="row">Content type</th>
              <td data-testid="topics-detail-content-type">{p.contentType}</td>
            </tr>
          )}
          {p.payloadFormatIndicator !== undefined && (
            <tr>
              <th scope="row">Payload format</th>
              <td>{p.payloadFormatIndicator ? "UTF-8 text" : "unspecified bytes"}</td>
            </tr>
          )}
          {p.messageExpiryInterval !== undefined && (
            <tr>
              <th scope="row">Message expiry</th>
              <td data-testid="topics-detail-expiry">{p.messageExpiryInterval} s left when received</td>
            </tr>
          )}
          {p.responseTopic !== undefined && (
            <tr>
              <th scope="row">Response topic</th>
              <td data-testid="topics-detail-response-topic">
                <code>{p.responseTopic}</code>
              </td>
            </tr>
          )}
          {correlation !== undefined && (
            <tr>
              <th scope="row">Correlation data</th>
              <td data-testid="topics-detail-correlation">
                <code>{correlation}</code>
              </td>
            </tr>
          )}
          {p.subscriptionIdentifier !== undefined && (
            <tr>
              <th scope="row">Subscription identifier</th>
              <td>{String(p.subscriptionIdentifier)}</td>
            </tr>
          )}
        </tbody>
      </table>
      {ups.length > 0 && (
        <table class="topics-props" data-testid="topics-detail-user-properties">
          <caption>User properties</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Value</th>
            </tr>
          </thead>
          <tbody>
            {ups.map(([k, v], i) => (
              <tr key={i}>
                <td>{k}</td>
                <td>{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
