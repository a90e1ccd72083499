// Package keyring holds a cluster's secrets: the keys each purpose
// (gossip encryption, internode signatures, the join proof) derives from
// them, the keyring a node rotates without a restart, and the secret file
// it reads them from (ReadFile, Watch). It is a leaf, imported by httpd,
// peer/transport and peer/membership alike.
package keyring
