/*
 * list.h: intrusive doubly linked lists (circular, with a head node).
 * Runs in: both processes. Header only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "shared/compiler.h"

struct list {
	struct list *prev, *next;
};

static inline void
list_init(struct list *l)
{
	l->prev = l->next = l;
}

static inline bool
list_empty(const struct list *l)
{
	return l->next == l;
}

/* Insert n before head, that is at the tail of the list. */
static inline void
list_append(struct list *head, struct list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void
list_prepend(struct list *head, struct list *n)
{
	n->next = head->next;
	n->prev = head;
	head->next->prev = n;
	head->next = n;
}

/* Unlink n and make it a list of its own (so a second del is harmless). */
static inline void
list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

static inline struct list *
list_first(const struct list *head)
{
	return list_empty(head) ? NULL : head->next;
}

#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_foreach(pos, head)       for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)
#define list_foreach_safe(pos, tmp, head)                                \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); \
	     (pos) = (tmp), (tmp) = (pos)->next)
