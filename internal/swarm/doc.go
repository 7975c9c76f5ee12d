// Package swarm is Avalanche's peer engine: it exchanges coded blocks of one
// or more pieces of content with other nodes over authenticated TLS links,
// following the protocol of package wire (specified in docs/protocol.md).
//
// A Node owns a node key and a listener and takes part in any number of
// swarms, one per content ID. In each Swarm the node is either a source
// (it holds the whole content: an origin, an edge, or a peer that finished)
// or a downloader. Downloaders choose what to ask for (receiver-driven
// credits: rarest generation first, or in order when streaming), check
// every block's coefficients for innovation before touching its payload,
// verify every payload against their secret linear checksums before using
// it, decode progressively, check each decoded generation against the
// signed manifest, and store it. Every node answers requests with fresh
// random combinations of what it holds, so partial downloaders serve too.
//
// Nodes with the origin role issue checksum keys and checksums (derived
// from a master secret, so the origin keeps no per-peer state); downloaders
// fetch them from the origin over the same authenticated link.
package swarm
