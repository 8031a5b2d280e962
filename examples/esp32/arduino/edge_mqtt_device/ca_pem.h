// The CA that signs your broker's certificate, pinned: only certificates it issued are
// accepted. Paste the whole PEM between the markers (README: "The CA to pin").
//   - deployed on Cloudflare: the root CA of your domain's edge certificate;
//   - `npm start -- --tls`: .wrangler/state/tls/ca.pem (and TLS_COMMON_NAME "localhost").
// Not needed for ws:// (no TLS). The sketch refuses to start with wss:// and no certificate.
#pragma once

static const char CA_PEM[] = R"PEM(
(paste the PEM of your CA here, BEGIN and END lines included)
)PEM";
