// posthog-node, unchanged (gzip on, its default): the story of tests/sdk/test_node_sdks.py.
// Usage: node posthog.mjs <host> <apiKey>; exits non-zero on any SDK error.
import { PostHog } from "posthog-node";
import { randomUUID } from "node:crypto";

const [host, apiKey] = process.argv.slice(2);
const errors = [];
const posthog = new PostHog(apiKey, { host, flushAt: 20, flushInterval: 0, fetchRetryCount: 0 });
posthog.on("error", (error) => errors.push(String(error?.message ?? error)));
const retried = randomUUID();
for (let i = 0; i < 2; i++) {
  posthog.capture({ distinctId: "anon-1", event: "Signed Up", properties: { plan: "pro" }, uuid: retried });
}
posthog.capture({ distinctId: "anon-1", event: "$pageview", properties: { $current_url: "/" } });
posthog.identify({ distinctId: "user-1", properties: { $anon_distinct_id: "anon-1", email: "ann@example.com" } });
posthog.capture({ distinctId: "anon-2", event: "$set", properties: { $set: { email: "bob@example.com" } } });
posthog.alias({ distinctId: "user-1", alias: "anon-2" });
await posthog.shutdown(10000);
if (errors.length) {
  console.error(JSON.stringify(errors));
  process.exit(1);
}
