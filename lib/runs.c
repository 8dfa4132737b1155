/* SPDX-License-Identifier: MIT */
#include "pt_internal.h"
