# `cmake --install`: the binary (server/CMakeLists.txt), the man pages, the
# systemd unit, the docs an operator needs and the example configs. Included
# at the end of the top CMakeLists.txt (GNUInstallDirs is included there,
# before the folders, so server/ can name CMAKE_INSTALL_SBINDIR).
#
# The default prefix (/usr/local) puts the unit in
# /usr/local/lib/systemd/system, which systemd reads too; the Debian package
# (debian/rules) sets POPGATE_SYSTEMD_UNITDIR=/lib/systemd/system.
set(POPGATE_SYSTEMD_UNITDIR "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
    CACHE PATH "where `cmake --install` puts popgate.service")

install(FILES man/popgate.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES man/popgate.toml.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)

# The unit in deploy/systemd names /usr/sbin/popgate and /etc/popgate (the
# package's paths); an install elsewhere gets its own paths written in.
file(READ ${PROJECT_SOURCE_DIR}/deploy/systemd/popgate.service
     POPGATE_UNIT_TEXT)
string(REPLACE "/usr/sbin/popgate" "${CMAKE_INSTALL_FULL_SBINDIR}/popgate"
       POPGATE_UNIT_TEXT "${POPGATE_UNIT_TEXT}")
string(REPLACE "/etc/popgate" "${CMAKE_INSTALL_FULL_SYSCONFDIR}/popgate"
       POPGATE_UNIT_TEXT "${POPGATE_UNIT_TEXT}")
file(WRITE ${PROJECT_BINARY_DIR}/deploy/popgate.service "${POPGATE_UNIT_TEXT}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/deploy/systemd/popgate.service)
install(FILES ${PROJECT_BINARY_DIR}/deploy/popgate.service
        DESTINATION ${POPGATE_SYSTEMD_UNITDIR})
# Socket activation is optional: an example to copy to /etc/systemd/system,
# not a packaged unit (dh_installsystemd would enable it, and systemd would
# take ports 110 and 995 on install, whatever the config says).
install(FILES deploy/systemd/popgate.socket
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/systemd)

# No config goes to /etc: popgate.service does not start until the operator
# writes one (ConditionPathExists), starting from the example.
install(FILES README.md docs/operations.md docs/health-checks.md
              docs/failover.md docs/client-identity.md docs/master-login.md
              docs/admin-api.md docs/logging.md docs/limits.md
              docs/abuse-defence.md docs/auth-cache.md docs/redis.md
              docs/front-proxy.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES deploy/popgate.toml DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES deploy/seccomp/popgate.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/seccomp)
install(FILES deploy/grafana/popgate.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/grafana)
install(DIRECTORY deploy/kubernetes/
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/kubernetes
        FILES_MATCHING PATTERN "*.yaml")
