// Package testutil holds what pofr's tests share: gates that skip a test with a
// reason when the machine cannot run it, a private MariaDB server, a private
// OpenSSH sshd, and a builder for the module's commands.
//
// # Tiers
//
// Every test belongs to one tier (README.md, "Tests"):
//
//   - unit and fuzz tests need nothing and never skip;
//   - "priv" ([TierPriv]) tests use kernel interfaces that need root or a
//     capability (cn_proc, sock_diag, fanotify): gate them with [RequireRoot]
//     or [RequireCap];
//   - "service" ([TierService]) tests talk to a real MariaDB or OpenSSH sshd:
//     [StartMariaDB] and [StartSSHD] gate themselves;
//   - "e2e" ([TierE2E]) tests run the built commands against all of the above:
//     gate them with RequireTier(t, TierE2E) and build commands with [Bin].
//
// A gate that cannot be met calls [Skip], which skips the test and says why.
// go test -short skips the priv, service and e2e tiers, leaving unit tests.
//
// # POFR_TEST_REQUIRE
//
// CI must not pass by skipping. When the environment variable
// POFR_TEST_REQUIRE is "all", or a comma-separated list that names the tier
// ("priv,service"), a skip of that tier fails the test instead, with the same
// reason. .ci/run sets POFR_TEST_REQUIRE=all. A name in the variable that is
// not a tier fails every gate, so a typo cannot quietly turn requirements off.
//
// # TestMain
//
// The MariaDB server and the commands built by [Bin] are shared by all tests of
// one test binary: they start on first use, and only [Main] stops and removes
// them, after the last test. Every package that calls [StartMariaDB] or [Bin]
// needs
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
//
// and those functions fail the test when it is missing. A per-test t.Cleanup
// cannot do this job: the first test to finish would stop the server under
// the others. [StartSSHD] starts one sshd per test and stops it in t.Cleanup,
// so it works without TestMain.
//
// If a test binary dies without reaching the end of [Main] (a -timeout panic,
// a kill), the kernel sends its servers SIGTERM, and the next [Main] of any
// package removes the temporary directories and system accounts that the dead
// process left behind.
package testutil
