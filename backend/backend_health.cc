#include "backend/backend_health.h"

namespace popgate {}  // namespace popgate
