// SPDX-License-Identifier: MIT

// Package repotest holds repository-wide checks (in its tests): the import
// rules of ARCHITECTURE.md (who owns each third-party module, and the
// layering of the data path under the control plane) and a doc comment on
// every package.
package repotest
