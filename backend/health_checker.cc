#include "backend/health_checker.h"

namespace popgate {}  // namespace popgate
