// The access pages: a user created from #/credentials, ACL rules added (and a bad one refused
// with the API's problem shown) and deleted from #/acl, "test a topic" denied then allowed with
// the deciding rule, and an API key created (its secret shown once) and revoked from #/keys.
// The broker runs with ALLOW_ANONYMOUS off, so that no rule means denied.
import { describe, expect, it } from "vitest";
import { ADMIN_AUTH, useDashboard } from "./harness";

describe("access pages: users, ACL, API keys", () => {
  const dash = useDashboard({ vars: { ALLOW_ANONYMOUS: "false" } });

  it("creates a user from the Users page (a duplicate and a bad name refused with a clear message)", async () => {
    const { page, login, open, shot, broker } = dash();
    await login();
    await open("#/credentials");
    await page.getByTestId("user-name").fill("dash-user");
    await page.getByTestId("user-password").fill("a-long-password-123");
    await page.getByTestId("user-create").click();
    await page.getByTestId("user-row-dash-user").waitFor();
    expect(await page.getByTestId("user-notice").textContent()).toContain("dash-user");
    // Stored: the API lists it.
    const res = await fetch(`${broker.httpUrl}/api/v1/credentials`, { headers: ADMIN_AUTH });
    expect(((await res.json()) as { items: Array<{ username: string }> }).items.map((u) => u.username)).toContain("dash-user");
    // The same name again: refused here (POST would replace its password; that is the row's "Replace password").
    await page.getByTestId("user-name").fill("dash-user");
    await page.getByTestId("user-password").fill("another-password-456");
    await page.getByTestId("user-create").click();
    await page.getByTestId("user-create-error").filter({ hasText: "already exists" }).waitFor();
    // A bad user name: the API's refusal is shown.
    await page.getByTestId("user-name").fill("bad/name");
    await page.getByTestId("user-password").fill("a-long-password-123");
    await page.getByTestId("user-create").click();
    const err = page.getByTestId("user-create-error");
    await err.waitFor();
    expect(await err.textContent()).toMatch(/400/);
    await shot("credentials");

    // Replace a password; delete a user after a confirmation that says what happens.
    await page.getByTestId("user-replace-dash-user").click();
    await page.getByTestId("user-replace-password-dash-user").fill("a-new-password-789");
    await page.getByTestId("user-replace-save-dash-user").click();
    await page.getByTestId("user-notice").filter({ hasText: "replaced" }).waitFor();
    await page.getByTestId("user-name").fill("dash-temp");
    await page.getByTestId("user-password").fill("a-long-password-123");
    await page.getByTestId("user-create").click();
    await page.getByTestId("user-row-dash-temp").waitFor();
    await page.getByTestId("user-delete-dash-temp").click();
    expect(await page.getByTestId("user-delete-dash-temp-confirm").textContent()).toMatch(/refused/);
    await page.getByTestId("user-delete-dash-temp-yes").click();
    await page.getByTestId("user-row-dash-temp").waitFor({ state: "detached" });
    expect(await page.getByTestId("user-row-dash-user").count()).toBe(1);
  });

  it("tests a topic (denied, then allowed by a new rule, then denied by a deny rule), refuses a bad rule, deletes a rule", async () => {
    const { page, open, shot } = dash();
    await open("#/acl");
    await page.getByTestId("acl-empty").waitFor();
    const test = async (topic: string): Promise<{ allowed: string | null; reason: string | null; rule: string | null }> => {
      await page.getByTestId("acl-check-topic").fill(topic);
      await page.getByTestId("acl-check-clientid").fill("dash-client");
      await page.getByTestId("acl-check-username").fill("dash-user");
      await page.getByTestId("acl-check-submit").click();
      const result = page.getByTestId("acl-check-result");
      await result.waitFor();
      const rule = page.getByTestId("acl-check-rule");
      return {
        allowed: await result.getAttribute("data-allowed"),
        reason: await result.getAttribute("data-reason"),
        rule: (await rule.count()) > 0 ? await rule.getAttribute("data-rule-id") : null,
      };
    };
    expect(await test("dash/room/1")).toEqual({ allowed: "false", reason: "default", rule: null });
    expect(await page.getByTestId("acl-check-verdict").textContent()).toBe("Denied");

    // Add an allow rule for the user.
    await page.getByTestId("acl-topic").fill("dash/#");
    await page.getByTestId("acl-username").fill("dash-user");
    await page.getByTestId("acl-add").click();
    await page.locator('[data-testid^="acl-row-"][data-topic="dash/#"]').waitFor();
    const allowId = (await page.locator('[data-testid^="acl-row-"][data-topic="dash/#"]').getAttribute("data-testid"))!.replace("acl-row-", "");
    expect(await test("dash/room/1")).toEqual({ allowed: "true", reason: "rule", rule: allowId });
    expect(await page.getByTestId("acl-check-verdict").textContent()).toBe("Allowed");

    // A deny wins over the allow.
    await page.getByTestId("acl-effect").selectOption("deny");
    await page.getByTestId("acl-action").selectOption("publish");
    await page.getByTestId("acl-topic").fill("dash/secret/%c");
    await page.getByTestId("acl-username").fill("");
    await page.getByTestId("acl-add").click();
    const denyRow = page.locator('[data-testid^="acl-row-"][data-topic="dash/secret/%c"]');
    await denyRow.waitFor();
    const denyId = (await denyRow.getAttribute("data-testid"))!.replace("acl-row-", "");
    expect(await test("dash/secret/dash-client")).toEqual({ allowed: "false", reason: "rule", rule: denyId });
    expect(await test("dash/secret/other")).toEqual({ allowed: "true", reason: "rule", rule: allowId });

    // A $ topic: nobody publishes there.
    expect(await test("$SYS/x")).toEqual({ allowed: "false", reason: "dollar-topic", rule: null });

    // A bad rule: the API's problem is shown, nothing added.
    await page.getByTestId("acl-topic").fill("a/#/b");
    await page.getByTestId("acl-add").click();
    const addError = page.getByTestId("acl-add-error");
    await addError.waitFor();
    expect(await addError.textContent()).toMatch(/400/);
    expect(await addError.textContent()).toMatch(/not a valid topic filter/);
    // A bad topic in the test form too.
    await page.getByTestId("acl-check-topic").fill("a/+");
    await page.getByTestId("acl-check-submit").click();
    await page.getByTestId("acl-check-error").waitFor();
    expect(await page.getByTestId("acl-check-error").textContent()).toMatch(/not a valid topic name/);
    await page.getByTestId("acl-check-topic").fill("dash/secret/dash-client");
    await page.getByTestId("acl-check-submit").click();
    await page.getByTestId("acl-check-result").waitFor();
    await shot("acl");

    // Delete the deny rule: asked first (cancel keeps it), then gone; the topic is allowed again.
    await page.getByTestId(`acl-delete-${denyId}`).click();
    const confirm = page.getByTestId(`acl-delete-${denyId}-confirm`);
    expect(await confirm.textContent()).toContain("dash/secret/%c");
    await page.getByTestId(`acl-delete-${denyId}-cancel`).click();
    expect(await denyRow.count()).toBe(1);
    await page.getByTestId(`acl-delete-${denyId}`).click();
    await page.getByTestId(`acl-delete-${denyId}-yes`).click();
    await denyRow.waitFor({ state: "detached" });
    expect(await test("dash/secret/dash-client")).toEqual({ allowed: "true", reason: "rule", rule: allowId });
  });

  it("creates an API key (secret shown once, with a copy button) and revokes it after a confirmation", async () => {
    const { page, open, shot, broker } = dash();
    await open("#/keys");
    await page.getByTestId("keys-empty").waitFor();
    await page.getByTestId("key-name").fill("dash gateway");
    await page.getByTestId("key-scopes").fill("dash/gw-1/#\ndash/gw-2/#");
    await page.getByTestId("key-create").click();
    const secret = page.getByTestId("key-secret-value");
    await secret.waitFor();
    const key = (await secret.textContent())!;
    expect(key).toMatch(/^emk_/);
    expect(await page.getByTestId("key-secret").textContent()).toMatch(/only this once/);
    expect(await page.getByTestId("key-secret-copy").count()).toBe(1);
    const row = page.locator('[data-testid^="key-row-"][data-name="dash gateway"]');
    await row.waitFor();
    const id = (await row.getAttribute("data-testid"))!.replace("key-row-", "");
    expect(key).toContain(id);
    // The key works (its scopes; the ACL allows it).
    const aclRes = await fetch(`${broker.httpUrl}/api/v1/acl`, {
      method: "POST",
      headers: { ...ADMIN_AUTH, "Content-Type": "application/json" },
      body: JSON.stringify({ username: `key:${id}`, topic: "dash/#", action: "publish", allow: true }),
    });
    expect(aclRes.status).toBe(201);
    const publish = () =>
      fetch(`${broker.httpUrl}/api/v1/publish`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ topic: "dash/gw-1/t", payload: "1" }),
      });
    expect((await publish()).status).toBe(202);
    await shot("keys");

    // Shown once: gone once dismissed, and not shown again after a reload.
    await page.getByTestId("key-secret-done").click();
    expect(await page.getByTestId("key-secret").count()).toBe(0);
    await page.reload();
    await page.locator('main[data-page="keys"]').waitFor();
    await row.waitFor();
    expect(await page.content()).not.toContain(key);

    // Revoke: asked first, then revoked; the key is refused from then on.
    await page.getByTestId(`key-revoke-${id}`).click();
    expect(await page.getByTestId(`key-revoke-${id}-confirm`).textContent()).toMatch(/refused/);
    await page.getByTestId(`key-revoke-${id}-yes`).click();
    await page.getByTestId(`key-status-${id}`).filter({ hasText: "revoked" }).waitFor();
    expect(await page.getByTestId(`key-revoke-${id}`).count()).toBe(0);
    expect((await publish()).status).toBe(401);
  });
});
