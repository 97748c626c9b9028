/*
 * sv_metrics.h: the OpenMetrics endpoint: a small non-blocking HTTP/1.1
 * server in the supervisor that answers GET /metrics with the Prometheus
 * text format (version 0.0.4), built from the shared segment with
 * shared/stats.h. Off unless openmetrics_port is set.
 * Runs in: the supervisor. Never blocks: every socket is non-blocking and
 * is served from the main loop's wait (sv_metrics_wait).
 */
#pragma once

#include <stddef.h>

#include "shared/compiler.h"
#include "shared/config.h"

/*
 * Listen on openmetrics_host:openmetrics_port (nothing when the port is 0).
 * -1 with a reason in err.
 */
int sv_metrics_open(const struct config *cfg, char *err, size_t err_len) MUST_CHECK;

/*
 * The main loop's sleep: wait for a signal, timeout_ms, or metrics sockets
 * that are ready, and serve those (accept, read the request, write the
 * answer). Without a metrics socket it is sv_signal_wait().
 */
void sv_metrics_wait(int timeout_ms);

/* Close the listening socket and every connection (exit; shutdown). */
void sv_metrics_close(void);

/* In a freshly forked worker: close the supervisor's metrics descriptors. */
void sv_metrics_child_close(void);

/*
 * Render the metrics text into a malloc'd NUL-terminated buffer (*out, length
 * *out_len) for namespace ns. -1 on out of memory. Exposed for tests.
 */
int sv_metrics_render(const char *ns, char **out, size_t *out_len) MUST_CHECK;
