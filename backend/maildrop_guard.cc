#include "backend/maildrop_guard.h"

namespace popgate {}  // namespace popgate
