// Package testutil holds what pofr's tests share: gates that skip a test with a
// reason when the machine cannot run it ([RequireRoot], [RequireCap],
// [RequireTier]; POFR_TEST_REQUIRE turns skips into failures for CI), a
// private MariaDB server, a private OpenSSH sshd, a private containerd with
// a tiny image of its own, and a builder for the module's commands. A package that calls [StartMariaDB] or [Bin] needs
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
//
// Design notes and measurements: docs/design.md, section "Test tiers and shared servers (internal/testutil)".
package testutil
