#include "backend/backend_pick.h"

namespace popgate {}  // namespace popgate
