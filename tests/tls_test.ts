import assert from "node:assert/strict";
import { ROOT, spawnServer } from "./helpers.ts";

const hasOpenssl = await Deno.stat("/usr/bin/openssl").then(() => true).catch(() => false);
if (!hasOpenssl) console.warn("\n*** SKIPPED: the TLS test needs openssl to make a test certificate. ***\n");

Deno.test({
  name: "--cert and --key serve https and wss directly",
  ignore: !hasOpenssl,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // A throwaway CA and a leaf certificate for localhost signed by it.
      await Deno.writeTextFile(
        `${dir}/ext.cnf`,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
      );
      const steps = [
        [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-keyout",
          "ca.key",
          "-out",
          "ca.pem",
          "-days",
          "1",
          "-subj",
          "/CN=Test CA",
        ],
        [
          "req",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-keyout",
          "key.pem",
          "-out",
          "req.csr",
          "-subj",
          "/CN=localhost",
        ],
        [
          "x509",
          "-req",
          "-in",
          "req.csr",
          "-CA",
          "ca.pem",
          "-CAkey",
          "ca.key",
          "-CAcreateserial",
          "-out",
          "cert.pem",
          "-days",
          "1",
          "-extfile",
          "ext.cnf",
        ],
      ];
      for (const args of steps) {
        const made = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
          .output();
        assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
      }
      await using server = await spawnServer(
        ["--data-dir", `${dir}/data`, "--cert", `${dir}/cert.pem`, "--key", `${dir}/key.pem`],
        { direct: true },
      );
      const caCerts = [await Deno.readTextFile(`${dir}/ca.pem`)];
      using client = Deno.createHttpClient({ caCerts });
      const res = await fetch(`https://localhost:${server.port}/healthz`, { client });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "ok" });
      // A wss echo from a client that trusts the test certificate.
      const script = `const ws = new WebSocket("wss://localhost:${server.port}/ws/echo");
        ws.onopen = () => ws.send("over tls");
        ws.onmessage = (e) => { console.log(e.data); ws.close(); };`;
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--cert", `${dir}/ca.pem`, script],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(
        new TextDecoder().decode(out.stdout).trim(),
        "over tls",
        new TextDecoder().decode(out.stderr),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
