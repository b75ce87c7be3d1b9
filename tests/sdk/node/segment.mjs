// @segment/analytics-node, unchanged: the story of tests/sdk/test_node_sdks.py.
// Usage: node segment.mjs <host> <writeKey>; exits non-zero on any SDK error.
import { Analytics } from "@segment/analytics-node";

const [host, writeKey] = process.argv.slice(2);
const analytics = new Analytics({ writeKey, host, maxRetries: 0, flushInterval: 50 });
const errors = [];
analytics.on("error", (error) => errors.push(String(error?.reason ?? error?.code ?? error)));

for (let i = 0; i < 2; i++) {
  // The same messageId twice: an SDK's retry.
  analytics.track({ anonymousId: "anon-1", event: "Signed Up", properties: { plan: "pro" }, messageId: "msg-signed-up" });
}
analytics.page({ anonymousId: "anon-1", name: "Home", properties: { path: "/" } });
analytics.identify({ userId: "user-1", anonymousId: "anon-1", traits: { email: "ann@example.com" } });
analytics.identify({ anonymousId: "anon-2", traits: { email: "bob@example.com" } });
analytics.alias({ previousId: "anon-2", userId: "user-1" });
await analytics.closeAndFlush({ timeout: 10000 });
if (errors.length) {
  console.error(JSON.stringify(errors));
  process.exit(1);
}
