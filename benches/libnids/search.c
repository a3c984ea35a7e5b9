/*
 * The C baseline of scripts/bench-vs-libnids.sh: libnids reassembles every
 * TCP stream of a capture, both directions, and each delivered chunk is
 * memmem-searched for a pattern, together with the tail of the previous
 * chunk of that direction, so a pattern split across chunks (or segments)
 * is found, as sluice's rule does. Overlapping occurrences are counted, as
 * a Lua `find` loop restarting one byte after each match counts them.
 *
 *   search CAPTURE.pcap PATTERN
 *
 * prints one line: `bytes N chunks N matches N streams N unusual N`.
 * Checksum verification is off (the bench's capture has valid checksums:
 * sluice, which verifies them, reports no bad-checksum drop on it), and so
 * is libnids' port-scan detection. "unusual" counts what libnids reports
 * through its syslog hook (invalid flags, overlaps, ...), so nothing it
 * skips goes unnoticed.
 *
 * Build (Debian: apt-get install libnids-dev): cc -O2 -o search search.c -lnids
 */
#define _GNU_SOURCE
#include <nids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest pattern: the tail kept per direction is one byte shorter. */
#define MAX_PATTERN 256

struct direction_tail {
	size_t len;
	unsigned char bytes[MAX_PATTERN];
};

/* Per connection: the tail of each direction (up: client to server). */
struct stream_state {
	struct direction_tail up;
	struct direction_tail down;
};

static const unsigned char *pattern;
static size_t pattern_len;
static unsigned long long bytes, chunks, matches, streams, unusual;

/* Occurrences of the pattern in [hay, hay+n), overlapping ones included. */
static unsigned long long count_in(const unsigned char *hay, size_t n)
{
	unsigned long long found = 0;
	const unsigned char *end = hay + n;
	const unsigned char *p = hay;

	while ((size_t)(end - p) >= pattern_len) {
		const unsigned char *m = memmem(p, end - p, pattern, pattern_len);
		if (m == NULL)
			break;
		found++;
		p = m + 1;
	}
	return found;
}

/*
 * Counts the matches of one chunk: those starting in the tail (they end in
 * the chunk, since the tail is shorter than the pattern), found in a small
 * junction buffer, then those wholly inside the chunk, without copying it.
 * Then keeps the last pattern_len - 1 bytes of tail + chunk as the new tail.
 */
static void search_chunk(struct direction_tail *tail, const unsigned char *data, size_t n)
{
	unsigned char junction[2 * MAX_PATTERN];
	size_t keep = pattern_len - 1;
	size_t head = n < keep ? n : keep;
	size_t i;

	memcpy(junction, tail->bytes, tail->len);
	memcpy(junction + tail->len, data, head);
	for (i = 0; i < tail->len && i + pattern_len <= tail->len + head; i++)
		if (memcmp(junction + i, pattern, pattern_len) == 0)
			matches++;
	matches += count_in(data, n);

	if (n >= keep) {
		memcpy(tail->bytes, data + n - keep, keep);
		tail->len = keep;
	} else {
		size_t total = tail->len + n;
		size_t drop = total > keep ? total - keep : 0;
		memmove(tail->bytes, junction + drop, total - drop);
		tail->len = total - drop;
	}
}

static void on_tcp(struct tcp_stream *s, void **param)
{
	struct stream_state *state = *param;

	switch (s->nids_state) {
	case NIDS_JUST_EST:
		state = calloc(1, sizeof *state);
		if (state == NULL) {
			fprintf(stderr, "search: out of memory\n");
			exit(1);
		}
		*param = state;
		s->client.collect++;
		s->server.collect++;
		streams++;
		return;
	case NIDS_DATA:
		/* We never call nids_discard, so data holds exactly the new bytes. */
		if (s->server.count_new) {
			search_chunk(&state->up, (unsigned char *)s->server.data, s->server.count_new);
			bytes += s->server.count_new;
			chunks++;
		}
		if (s->client.count_new) {
			search_chunk(&state->down, (unsigned char *)s->client.data, s->client.count_new);
			bytes += s->client.count_new;
			chunks++;
		}
		return;
	default: /* NIDS_CLOSE, NIDS_RESET, NIDS_TIMED_OUT, NIDS_EXITING */
		free(state);
		*param = NULL;
		return;
	}
}

static void on_unusual(int type, int err, struct ip *iph, void *data)
{
	(void)type;
	(void)err;
	(void)iph;
	(void)data;
	unusual++;
}

int main(int argc, char **argv)
{
	static struct nids_chksum_ctl no_checksums = { .netaddr = 0, .mask = 0, .action = NIDS_DONT_CHKSUM };

	if (argc != 3) {
		fprintf(stderr, "usage: %s CAPTURE.pcap PATTERN\n", argv[0]);
		return 2;
	}
	pattern = (const unsigned char *)argv[2];
	pattern_len = strlen(argv[2]);
	if (pattern_len == 0 || pattern_len > MAX_PATTERN) {
		fprintf(stderr, "search: the pattern must have 1 to %d bytes\n", MAX_PATTERN);
		return 2;
	}
	nids_params.filename = argv[1];
	nids_params.device = NULL;
	nids_params.scan_num_hosts = 0;
	nids_params.n_tcp_streams = 65536;
	nids_params.syslog = on_unusual;
	nids_register_chksum_ctl(&no_checksums, 1);
	if (!nids_init()) {
		fprintf(stderr, "search: nids_init: %s\n", nids_errbuf);
		return 1;
	}
	nids_register_tcp(on_tcp);
	nids_run();
	nids_exit();
	printf("bytes %llu chunks %llu matches %llu streams %llu unusual %llu\n",
	       bytes, chunks, matches, streams, unusual);
	return 0;
}
