#!/usr/bin/python3
"""weightctl's credential flags (--tls_ca, --tls_cert, --tls_key, --token and
WEIGHTD_TOKEN) against a real weightd started with TLS, mTLS and a tokens
file; the CA and certificates are made by openssl at test time.

usage: weightctl_tls_test.py WEIGHTCTL WEIGHTD DATA_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
from weightd_process import WeightdProcess  # noqa: E402

WEIGHTCTL, WEIGHTD, DATA = sys.argv[1:4]
del sys.argv[1:4]

READ_TOKEN = "read-token-0123"
ADMIN_TOKEN = "admin-token-4567"

# A CA, and server (localhost, 127.0.0.1) and client certificates it signed.
MAKE_CERTS = r"""
set -e
K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj /CN=weightd-test-ca
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
for n in server client; do
  openssl req $K -keyout $n.key -out $n.csr -subj /CN=weightd-$n
  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out $n.pem -days 2 -extfile $n.ext
done
"""


class CredentialsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        subprocess.run(["bash", "-c", MAKE_CERTS], cwd=cls.dir, check=True,
                       capture_output=True, timeout=60)
        tokens = cls.path("tokens")
        with open(tokens, "w") as f:
            f.write("%s read\n%s admin\n" % (READ_TOKEN, ADMIN_TOKEN))
        cls.daemon = WeightdProcess(
            WEIGHTD, os.path.join(DATA, "repo"), "--tls_cert", cls.path("server.pem"),
            "--tls_key", cls.path("server.key"), "--tls_client_ca", cls.path("ca.pem"),
            "--auth_tokens_file", tokens)
        # The server certificate names localhost.
        cls.server = "localhost:" + cls.daemon.port
        cls.plaintext = WeightdProcess(WEIGHTD, os.path.join(DATA, "repo"))

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.plaintext.stop()
        cls.tmp.cleanup()

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir, name)

    def mtls(self):
        return ["--tls_ca", self.path("ca.pem"), "--tls_cert", self.path("client.pem"),
                "--tls_key", self.path("client.key")]

    def ctl(self, *args, code=0, token=None):
        env = dict(os.environ)
        env.pop("WEIGHTD_TOKEN", None)
        if token is not None:
            env["WEIGHTD_TOKEN"] = token
        r = subprocess.run([WEIGHTCTL, *args, "--server", self.server], capture_output=True,
                           text=True, timeout=120, env=env)
        self.assertEqual(r.returncode, code, r.stdout + r.stderr)
        return r

    def test_help_lists_the_credential_flags(self):
        for command in ["list", "manifest", "pull", "match"]:
            out = subprocess.run([WEIGHTCTL, command, "--help"], capture_output=True,
                                 text=True, timeout=60).stdout
            for flag in ["--tls_ca", "--tls_cert", "--tls_key", "--token", "WEIGHTD_TOKEN"]:
                self.assertIn(flag, out, command)

    def test_list_without_tls_ca_fails_and_says_so(self):
        r = self.ctl("list", "--token", READ_TOKEN, code=1)
        self.assertIn("unavailable", r.stderr)
        self.assertIn("--tls_ca", r.stderr)

    def test_list_with_ca_client_certificate_and_read_token(self):
        models = json.loads(self.ctl("list", "--json", "--token", READ_TOKEN, *self.mtls()).stdout)
        self.assertIn("lenet", [m["name"] for m in models])

    def test_token_from_the_environment(self):
        models = json.loads(self.ctl("list", "--json", *self.mtls(), token=READ_TOKEN).stdout)
        self.assertIn("lenet", [m["name"] for m in models])

    def test_token_flag_wins_over_the_environment(self):
        self.ctl("list", "--token", READ_TOKEN, *self.mtls(), token="not-a-token")

    def test_read_token_reads_a_manifest(self):
        manifest = json.loads(self.ctl("manifest", "lenet", "--json", *self.mtls(),
                                       token=READ_TOKEN).stdout)
        self.assertEqual(manifest["model"], "lenet")

    def test_pull_with_credentials(self):
        out = self.path("lenet.safetensors")
        self.ctl("pull", "lenet", "-o", out, *self.mtls(), token=READ_TOKEN)
        self.assertGreater(os.path.getsize(out), 0)

    def test_bad_token_shows_unauthenticated(self):
        r = self.ctl("list", "--token", "wrong-token", *self.mtls(), code=1)
        self.assertIn("UNAUTHENTICATED", r.stderr)
        self.assertNotIn("wrong-token", r.stderr)

    def test_no_token_shows_unauthenticated(self):
        r = self.ctl("list", *self.mtls(), code=1)
        self.assertIn("UNAUTHENTICATED", r.stderr)

    def test_without_client_certificate_mtls_refuses(self):
        r = self.ctl("list", "--tls_ca", self.path("ca.pem"), code=1, token=READ_TOKEN)
        self.assertIn("unavailable", r.stderr)
        self.assertIn("client certificates (mTLS), pass --tls_cert and --tls_key", r.stderr)
        self.assertOneLine(r.stderr)

    def assertOneLine(self, stderr):
        self.assertEqual(len(stderr.strip().splitlines()), 1, stderr)

    def run_against(self, server, *args):
        r = subprocess.run([WEIGHTCTL, "list", "--server", server, *args], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertOneLine(r.stderr)
        return r.stderr

    def test_refused_connection_says_nothing_listens(self):
        self.assertIn("nothing listens on 127.0.0.1:1 (connection refused)",
                      self.run_against("127.0.0.1:1"))

    def test_unknown_host_says_the_name_does_not_resolve(self):
        self.assertIn("cannot resolve the host name of no-such-host.invalid:50051",
                      self.run_against("no-such-host.invalid:50051"))

    def test_tls_against_a_plaintext_server_says_so(self):
        err = self.run_against(self.plaintext.address, "--tls_ca", self.path("ca.pem"))
        self.assertIn("speaks plaintext, not TLS: leave out --tls_ca", err)

    def test_plaintext_against_a_tls_server_suggests_tls_ca(self):
        self.assertIn("if it speaks TLS, pass --tls_ca", self.run_against(self.server))

    def test_a_ca_that_did_not_sign_the_server_says_so(self):
        # client.pem is a certificate, but not of the CA that signed the server's.
        err = self.run_against(self.server, "--tls_ca", self.path("client.pem"))
        self.assertIn("does not verify against --tls_ca", err)

    def test_a_damaged_ca_file_says_so(self):
        damaged = self.path("damaged-ca.pem")
        with open(damaged, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        err = self.run_against(self.server, "--tls_ca", damaged)
        self.assertIn("--tls_ca %s: no certificate in it could be loaded" % damaged, err)

    def test_missing_pem_file_is_named(self):
        missing = self.path("no-such-ca.pem")
        r = self.ctl("list", "--tls_ca", missing, code=1, token=READ_TOKEN)
        self.assertIn(missing, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_a_file_that_is_not_pem_is_named(self):
        r = self.ctl("list", "--tls_ca", self.path("server.ext"), code=1, token=READ_TOKEN)
        self.assertIn("server.ext: not a PEM file", r.stderr)

    def test_client_certificate_without_key_is_bad_usage(self):
        r = self.ctl("list", "--tls_ca", self.path("ca.pem"), "--tls_cert",
                     self.path("client.pem"), code=2, token=READ_TOKEN)
        self.assertIn("--tls_key", r.stderr)


if __name__ == "__main__":
    unittest.main()
